import os from 'node:os';
import fs from 'node:fs/promises';
import type { Worker } from 'node:worker_threads';
import { CairnError, type ErrorCode } from '../errors.js';
import type { Id } from './id.js';
import { HeaderBlobs } from './pack.js';
import type { Repository } from './repository.js';
import { PACK_SIZE } from './repository.js';
import { startWorker, terminateLoaded, whenLoaded, workerScript } from '../util/worker.js';
import { SMALL_FILE } from './worker-protocol.js';
import type { BatchFileResult, CheckPackResult, FsOp, OpenBlob, OpenResult, ProbeResult, Reply, Request, RestoreBlob, RestoreBlobsResult, SaveResult, WorkerInit } from './worker-protocol.js';
import { transferable } from '../util/transfer.js';
import { polynomialToHex } from '../chunker/polynomial.js';
import { removeStaged, stagingPrefix, sweepStaging } from './staging.js';
import { newClaimTable } from './claims.js';

/** The compiled worker script; tests run from TypeScript sources, so they use the build in dist/. */
function blobWorkerScript(): URL {
  const url = workerScript('blob-worker.js', import.meta.url, '../../dist/repository/blob-worker.js');
  if (!url) throw new CairnError('INTERNAL', 'blob worker script not found: run "npm run build" first');
  return url;
}

/** How many workers a pool runs unless told: one per core (CAIRN_WORKERS overrides), at most 8. */
function defaultPoolSize(): number {
  return Number(process.env.CAIRN_WORKERS) || Math.max(1, Math.min(os.availableParallelism(), 8));
}

/** Workers started ahead of their pool (see prewarmWorkers), loaded or loading, waiting for its settings. */
const prewarmed: { worker: Worker; loaded: Promise<void>; dead: boolean }[] = [];

/**
 * Starts a default pool's workers before the repository is open, so that they load their modules
 * while the key is derived (~0.1 s of scrypt on one core) and the index loads: the next pool made
 * takes them and sends them its settings. Check and restore start their pool once the key is
 * known, and their first pack waited ~0.1-0.17 s for the workers' boot. Workers no pool takes do
 * not keep the process alive.
 */
export function prewarmWorkers(n = defaultPoolSize()): void {
  const script = blobWorkerScript();
  while (prewarmed.length < n) {
    const worker = startWorker(script, {});
    const w = { worker, loaded: whenLoaded(worker), dead: false };
    // One that failed to load is left for a fresh one (a pool that takes it listens for errors from then on).
    const died = (): void => void (w.dead = true);
    worker.once('error', died).once('exit', died);
    // After the listeners: a 'message' listener added to an unreferenced worker references it again.
    worker.unref();
    prewarmed.push(w);
  }
}

/** How many prewarmed workers wait for a pool (those that failed to load not counted). */
export function prewarmedWorkers(): number {
  return prewarmed.filter((w) => !w.dead).length;
}

interface Slot {
  worker: Worker;
  inFlight: number;
  loaded: Promise<void>;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  slot: Slot;
}

export interface PoolOptions {
  workers?: number;
  packSize?: number;
  /** How workers read batches of small files (see WorkerInit.readAhead). */
  readAhead?: 'auto' | 'always';
}

export { SMALL_FILE };
/** A batch goes out at this many files or bytes, or when the main thread has nothing else to do. */
const BATCH_FILES = 32;
const BATCH_BYTES = 1024 * 1024;

interface Batch {
  paths: (string | Buffer)[];
  /** Each file's size as the walk saw it. */
  sizes: number[];
  waiters: { resolve: (r: SaveResult) => void; reject: (e: unknown) => void }[];
  bytes: number;
}

/** Lent buffers are sized in whole MiB, so one buffer fits many ranges. */
const SPARE_ROUNDING = 1024 * 1024;

/**
 * The ArrayBuffer to transfer for `data`, whose offsets start at 0: its own when it starts there
 * and is not a slice of Node's shared pool (then it may be larger than `data`), else a copy.
 */
function lend(data: Buffer): ArrayBuffer {
  const ab = data.buffer;
  if (data.byteOffset === 0 && ab instanceof ArrayBuffer && ab.byteLength > Buffer.poolSize) return ab;
  return transferable(data);
}

/** An error a worker reported while reading a source file, with the errno it saw. */
export class SourceError extends Error {
  readonly errno: string | undefined;
  constructor(message: string, errno: string | undefined) {
    super(message);
    this.errno = errno;
  }
}

/**
 * Threads that hash, compress, encrypt and pack (backup) or decrypt, decompress and verify
 * (restore, check). Data packs that workers fill are saved through the repository here on the
 * main thread, so the backend is only ever used from one place.
 */
export class WorkerPool {
  readonly #repo: Repository;
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, Pending>();
  #seq = 0;
  #packSaves: Promise<void>[] = [];
  #failure: unknown = null;
  #closed = false;
  readonly #staging: { folder: string; prefix: string };
  /** Set by the first backup job: stale staged files are swept before this pool stages any. */
  #stagingReady: Promise<void> | null = null;
  readonly #size: number;
  readonly #init: Omit<WorkerInit, 'index' | 'claims'>;
  /** The index table the workers read (see MasterIndex.table). */
  #sharedIndex: SharedArrayBuffer | null = null;
  /** Buffers back from workers, to load the next ranges into. */
  readonly #spare: ArrayBuffer[] = [];
  /** Small files waiting to go to a worker together (see SMALL_FILE). */
  #batch: Batch | null = null;
  #batchTimer: NodeJS.Immediate | null = null;

  constructor(repo: Repository, opts: PoolOptions = {}) {
    this.#repo = repo;
    this.#staging = { folder: repo.backend.stagingFolder ?? os.tmpdir(), prefix: stagingPrefix() };
    this.#size = opts.workers ?? defaultPoolSize();
    this.#init = {
      key: repo.key.raw,
      polynomial: polynomialToHex(repo.config.polynomial),
      compression: repo.compression,
      packSize: opts.packSize ?? PACK_SIZE,
      noatime: process.getuid?.() === 0,
      staging: this.#staging,
      readAhead: opts.readAhead ?? 'auto',
    };
  }

  /**
   * Starts the workers now rather than with the first job, so that they boot while the caller
   * loads what it needs (restore and check). Without it workers start with the first job, and a
   * backup that reads no file (nothing changed) never pays for them.
   */
  start(): this {
    if (this.#slots.length === 0 && !this.#closed) this.#boot();
    return this;
  }

  #boot(): void {
    const script = blobWorkerScript();
    this.#sharedIndex = this.#repo.index.table;
    const claims = newClaimTable();
    const warm = prewarmed.splice(0, this.#size).filter((w) => !w.dead);
    for (let i = 0; i < this.#size; i++) {
      const workerData: WorkerInit = { ...this.#init, staging: { ...this.#staging, prefix: `${this.#staging.prefix}${i}-` }, index: this.#sharedIndex, claims };
      let slot: Slot;
      const w = warm[i];
      if (w) {
        // Its settings come first: the worker takes its jobs only once it has them.
        w.worker.ref();
        w.worker.postMessage({ op: 'init', init: workerData } satisfies Request);
        slot = { worker: w.worker, inFlight: 0, loaded: w.loaded };
      } else {
        const worker = startWorker(script, { workerData });
        slot = { worker, inFlight: 0, loaded: whenLoaded(worker) };
      }
      const worker = slot.worker;
      worker.on('message', (m: Reply) => this.#onMessage(slot, m));
      worker.on('error', (err) => this.#fail(err));
      this.#slots.push(slot);
    }
  }

  get size(): number {
    return this.#size;
  }

  /** Shares the index's blob table again once it is a new one (it grew, or the index was read again). */
  #shareIndex(): void {
    const table = this.#repo.index.table;
    if (this.#slots.length === 0 || table === this.#sharedIndex) return;
    this.#sharedIndex = table;
    for (const s of this.#slots) s.worker.postMessage({ op: 'index', table } satisfies Request);
  }

  #onMessage(slot: Slot, m: Reply): void {
    if (m.op === 'loaded') return;
    if (m.op === 'pack') {
      const save = this.#savePack(slot, m.id, m.path, new HeaderBlobs(Buffer.from(m.header), m.count));
      this.#packSaves.push(save);
      return;
    }
    const p = this.#pending.get(m.seq);
    if (!p) return;
    this.#pending.delete(m.seq);
    p.slot.inFlight--;
    if (m.lent) this.#giveBack(m.lent);
    if (m.op === 'error' && m.fatal) {
      // Blobs this worker claimed are gone with its pack; other workers' files may name them.
      const err = new CairnError(m.code as ErrorCode, m.message);
      p.reject(err);
      this.#fail(err);
    } else if (m.op === 'done') p.resolve(m.result);
    else if (m.code) p.reject(new CairnError(m.code as ErrorCode, m.message));
    else p.reject(new SourceError(m.message, m.errno));
  }

  async #savePack(from: Slot, id: Id, path: string, blobs: HeaderBlobs): Promise<void> {
    try {
      await this.#repo.savePackFile(id, path, blobs);
      // The pack's blobs are in the index's table now, which the workers read.
      this.#shareIndex();
      from.worker.postMessage({ op: 'packSaved', id } satisfies Request);
    } catch (err) {
      this.#fail(err);
    }
  }

  #fail(err: unknown): void {
    if (this.#failure) return;
    this.#failure = err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  #call<T>(req: Request, transfer: ArrayBuffer[] = [], slot?: Slot): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new CairnError('INTERNAL', 'worker pool is closed'));
    if (this.#slots.length === 0) this.#boot();
    else this.#shareIndex();
    const s = slot ?? this.#slots.reduce((a, b) => (b.inFlight < a.inFlight ? b : a));
    s.inFlight++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set((req as { seq: number }).seq, { resolve: resolve as (v: unknown) => void, reject, slot: s });
      s.worker.postMessage(req, transfer);
    });
  }

  /** Least busy worker's queue length; callers keep about two jobs per worker in flight. */
  get busy(): number {
    return this.#slots.reduce((n, s) => n + s.inFlight, 0);
  }

  /** Before the first pack is staged: the leftovers of crashed runs go (see staging.ts). */
  #prepareStaging(): Promise<void> {
    this.#stagingReady ??= (async () => {
      await fs.mkdir(this.#staging.folder, { recursive: true }).catch(() => undefined);
      await sweepStaging(this.#staging.folder);
    })();
    return this.#stagingReady;
  }

  /** Chunks, hashes and stores a file's content; rejects with SourceError when it cannot be read. */
  async saveFile(path: string | Buffer): Promise<SaveResult> {
    await this.#prepareStaging();
    return this.#call({ op: 'file', seq: ++this.#seq, path });
  }

  /**
   * Like saveFile, for a file of at most SMALL_FILE bytes (`size`, as last seen): it goes to a
   * worker with other small files in one message.
   */
  async saveSmallFile(path: string | Buffer, size: number): Promise<SaveResult> {
    await this.#prepareStaging();
    return new Promise<SaveResult>((resolve, reject) => {
      const b = (this.#batch ??= { paths: [], sizes: [], waiters: [], bytes: 0 });
      b.paths.push(path);
      b.sizes.push(size);
      b.waiters.push({ resolve, reject });
      b.bytes += size;
      if (b.paths.length >= BATCH_FILES || b.bytes >= BATCH_BYTES) this.#sendBatch();
      else this.#batchTimer ??= setImmediate(() => this.#sendBatch());
    });
  }

  #sendBatch(): void {
    if (this.#batchTimer) clearImmediate(this.#batchTimer);
    this.#batchTimer = null;
    const b = this.#batch;
    this.#batch = null;
    if (!b) return;
    this.#call<BatchFileResult[]>({ op: 'files', seq: ++this.#seq, paths: b.paths, sizes: b.sizes }).then(
      (results) =>
        results.forEach((r, i) => {
          if ('error' in r) b.waiters[i].reject(new SourceError(r.error, r.errno));
          else b.waiters[i].resolve(r);
        }),
      (err: unknown) => {
        for (const w of b.waiters) w.reject(err);
      },
    );
  }

  /** Stores one chunk of data (already cut by the caller). */
  async saveBuffer(data: Uint8Array): Promise<SaveResult> {
    await this.#prepareStaging();
    const ab = transferable(data);
    return this.#call({ op: 'buffer', seq: ++this.#seq, data: ab }, [ab]);
  }

  /** Decrypts, decompresses and verifies blobs out of one loaded pack range. */
  async open(data: Buffer, blobs: OpenBlob[]): Promise<{ plains: (Buffer | null)[]; errors: (string | null)[] }> {
    const ab = transferable(data);
    const r = await this.#call<OpenResult>({ op: 'open', seq: ++this.#seq, data: ab, blobs }, [ab]);
    const all = Buffer.from(r.data);
    const plains: (Buffer | null)[] = [];
    let pos = 0;
    for (const len of r.lengths) {
      if (len < 0) {
        plains.push(null);
        continue;
      }
      plains.push(all.subarray(pos, pos + len));
      pos += len;
    }
    return { plains, errors: r.errors };
  }

  /**
   * A buffer of `size` bytes to load pack bytes into. Buffers handed to `checkPack` and
   * `restoreBlobs` come back from the workers and are used again, so reading a repository
   * allocates a few buffers rather than one per range.
   */
  buffer(size: number): Buffer {
    const i = this.#spare.findIndex((ab) => ab.byteLength >= size);
    if (i >= 0) return Buffer.from(this.#spare.splice(i, 1)[0], 0, size);
    // None is large enough: a larger one replaces the smallest, so the count stays bounded.
    this.#spare.sort((a, b) => b.byteLength - a.byteLength).pop();
    return Buffer.from(new ArrayBuffer(Math.ceil(size / SPARE_ROUNDING) * SPARE_ROUNDING), 0, size);
  }

  /** Keeps a buffer that came back from a worker for the next load. */
  #giveBack(ab: ArrayBuffer): void {
    if (ab.byteLength < SPARE_ROUNDING) return;
    this.#spare.push(ab);
    // Keep the largest few: two per worker and one loading.
    if (this.#spare.length > this.#size * 2 + 1) this.#spare.sort((a, b) => b.byteLength - a.byteLength).pop();
  }

  /** Returns a buffer from `buffer` that will not be handed to a worker (its load failed). */
  recycle(buf: Buffer): void {
    if (buf.byteOffset === 0 && buf.buffer instanceof ArrayBuffer) this.#giveBack(buf.buffer);
  }

  /** Checks pack `id` from its bytes; with `trees`, the result holds the facts of its trees (see tree-facts.ts). */
  checkPack(id: Id, data: Buffer, trees = false): Promise<CheckPackResult> {
    const ab = lend(data);
    return this.#call({ op: 'checkPack', seq: ++this.#seq, id, data: ab, length: data.length, trees }, [ab]);
  }

  /** As checkPack, for a pack stored in the local file at `path`, which the worker reads itself. */
  checkPackFile(id: Id, path: string, trees = false): Promise<CheckPackResult> {
    return this.#call({ op: 'checkPackFile', seq: ++this.#seq, id, path, trees });
  }

  verifyFile(path: string, blobs: { id: Id; size: number }[]): Promise<boolean> {
    return this.#call({ op: 'verifyFile', seq: ++this.#seq, path, blobs });
  }

  /** Verifies blobs out of a loaded pack range and writes each to its destinations, in a worker. */
  restoreBlobs(data: Buffer, blobs: RestoreBlob[]): Promise<RestoreBlobsResult> {
    const ab = lend(data);
    return this.#call({ op: 'restoreBlobs', seq: ++this.#seq, data: ab, blobs }, [ab]);
  }

  /** As restoreBlobs, for blobs of a pack stored in the local file at `path` (offsets in the file), which the worker reads itself. */
  restoreBlobsFile(path: string, blobs: RestoreBlob[]): Promise<RestoreBlobsResult> {
    return this.#call({ op: 'restoreBlobsFile', seq: ++this.#seq, path, blobs });
  }

  /** Runs a batch of file-system operations with synchronous calls in one worker. */
  fsBatch(ops: FsOp[]): Promise<(string | null | boolean | { probe: ProbeResult })[]> {
    return this.#call({ op: 'fsBatch', seq: ++this.#seq, ops });
  }

  /** Makes every worker hand over its partial pack and waits until all packs are saved. */
  async flush(): Promise<void> {
    this.#sendBatch();
    await Promise.all(this.#slots.map((s) => this.#call({ op: 'flush', seq: ++this.#seq }, [], s)));
    while (this.#packSaves.length > 0) {
      const saves = this.#packSaves;
      this.#packSaves = [];
      await Promise.all(saves);
    }
    if (this.#failure) throw this.#failure;
  }

  /** Stops the workers; packs they staged but did not finish (an error, an abort) are removed. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#batchTimer) clearImmediate(this.#batchTimer);
    this.#batchTimer = null;
    for (const w of this.#batch?.waiters ?? []) w.reject(new CairnError('INTERRUPTED', 'the worker pool was closed'));
    this.#batch = null;
    await Promise.all(this.#slots.map((s) => terminateLoaded(s.worker, s.loaded)));
    // Calls still out with a terminated worker would otherwise never settle.
    for (const [seq, p] of this.#pending) {
      this.#pending.delete(seq);
      p.reject(new CairnError('INTERRUPTED', 'the worker pool was closed'));
    }
    await Promise.allSettled(this.#packSaves);
    if (this.#stagingReady) await removeStaged(this.#staging.folder, this.#staging.prefix);
  }
}
