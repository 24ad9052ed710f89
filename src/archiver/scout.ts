import type { Worker } from 'node:worker_threads';
import { fromWire, pathKey, type FsPath } from '../fs/fspath.js';
import { errorFromWire, listDir, type Listing, type WireError } from './listing.js';
import type { ExcludeLists } from './excludes.js';
import { LOADED, startWorker, terminateLoaded, whenLoaded, workerScript } from '../util/worker.js';

export interface ScoutInit extends ExcludeLists {
  oneFileSystem: boolean;
  /** Entries (plus one per folder) the thread may read ahead before the walk takes them. */
  credit: number;
  /** Source paths to start reading at once, before the walk asks (folders among them, in order). */
  seeds: string[];
}

export type ScoutRequest = { op: 'list'; seq: number; dir: string | Uint8Array; rootDev: bigint } | { op: 'credit'; entries: number };

export interface ScoutReply {
  /** The walk's request this answers; 0 for a folder read ahead. */
  seq: number;
  dir: string | Uint8Array;
  listing?: Listing;
  error?: WireError;
}

/** Listings read ahead and not yet taken hold at most this many entries (~100 bytes each). */
const CREDIT = 50_000;

type Outcome = { listing: Listing } | { error: Error };

/**
 * Reads folders ahead of the backup walk on a thread of its own, so that readdir and lstat run
 * beside the walk instead of in it. The thread walks the same tree in the same order, skipping
 * the same paths, and sends each listing here, where the walk takes it (`list`) when it gets to
 * that folder. A folder the walk reaches first is asked for at once. Listings waiting to be taken
 * are bounded (CREDIT entries), so memory stays flat whatever the tree. Without the thread (it
 * failed to start or died), folders are listed on the calling thread, with the same results.
 */
export class Scout {
  #worker: Worker | null;
  readonly #loaded: Promise<void>;
  #seq = 0;
  /** Read ahead, not yet taken. */
  readonly #ready = new Map<string, Outcome>();
  /** The walk's own requests, by sequence number. */
  readonly #asked = new Map<number, { resolve: (l: Listing) => void; reject: (e: Error) => void; dir: FsPath }>();
  /** Credit to give back once enough has been taken. */
  #taken = 0;

  /**
   * Starts the thread. With `seeds` (the backup's source paths), it starts reading them at once,
   * so that a backup can start the thread before it opens the repository and find the first
   * listings waiting when its walk begins.
   */
  constructor(opts: Omit<ScoutInit, 'credit' | 'seeds'>, seeds: string[] = []) {
    const script = workerScript('scout-worker.js', import.meta.url, '../../dist/archiver/scout-worker.js');
    this.#worker = script ? startWorker(script, { workerData: { ...opts, seeds, credit: CREDIT } satisfies ScoutInit }) : null;
    this.#loaded = this.#worker ? whenLoaded(this.#worker) : Promise.resolve();
    this.#worker?.on('message', (batch: ScoutReply[] | typeof LOADED) => {
      if (Array.isArray(batch)) for (const r of batch) this.#onReply(r);
    });
    this.#worker?.on('error', () => this.#fallBack());
    this.#worker?.on('exit', () => this.#fallBack());
  }

  /** The folder's listing; throws as readdir does when the folder cannot be read. */
  list(dir: FsPath, rootDev: bigint): Promise<Listing> {
    const key = pathKey(dir);
    const ready = this.#ready.get(key);
    if (ready) {
      this.#ready.delete(key);
      this.#giveBack('listing' in ready ? ready.listing.names.length + 1 : 1);
      return 'listing' in ready ? Promise.resolve(ready.listing) : Promise.reject(ready.error);
    }
    if (!this.#worker) return Promise.resolve().then(() => listDir(dir));
    const seq = ++this.#seq;
    this.#worker.postMessage({ op: 'list', seq, dir, rootDev } satisfies ScoutRequest);
    return new Promise<Listing>((resolve, reject) => this.#asked.set(seq, { resolve, reject, dir }));
  }

  /** Stops the thread; listings still owed are dropped (the walk is over or failed). */
  async close(): Promise<void> {
    const w = this.#worker;
    this.#worker = null;
    this.#ready.clear();
    for (const [seq, p] of this.#asked) {
      this.#asked.delete(seq);
      p.reject(new Error('folder listing stopped'));
    }
    if (w) await terminateLoaded(w, this.#loaded);
  }

  #giveBack(entries: number): void {
    this.#taken += entries;
    if (this.#taken < CREDIT / 8) return;
    this.#worker?.postMessage({ op: 'credit', entries: this.#taken } satisfies ScoutRequest);
    this.#taken = 0;
  }

  #onReply(r: ScoutReply): void {
    const outcome: Outcome = r.listing ? { listing: r.listing } : { error: errorFromWire(r.error ?? { message: 'cannot read folder' }) };
    if (r.seq === 0) {
      this.#ready.set(pathKey(fromWire(r.dir)), outcome);
      return;
    }
    const w = this.#asked.get(r.seq);
    if (!w) return;
    this.#asked.delete(r.seq);
    // Read ahead and asked for at once: the walk got it from whichever came first.
    this.#ready.delete(pathKey(w.dir));
    if ('listing' in outcome) w.resolve(outcome.listing);
    else w.reject(outcome.error);
  }

  /** The thread is gone: whatever it still owed is listed here. */
  #fallBack(): void {
    if (!this.#worker) return;
    this.#worker = null;
    for (const [seq, w] of this.#asked) {
      this.#asked.delete(seq);
      try {
        w.resolve(listDir(w.dir));
      } catch (err) {
        w.reject(err as Error);
      }
    }
  }
}
