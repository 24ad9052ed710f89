import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CairnError } from '../errors.js';
import { Limiter } from '../util/limit.js';
import {
  checkMirrorSource,
  MANIFEST,
  patchSource,
  readManifest,
  scanSource,
  TRASH,
  writeManifest,
  type Manifest,
  type ManifestEntry,
  type SourceState,
} from './mirror-state.js';
import { openStore } from './open-store.js';
import { expired, formatTimestamp, parseTimestamp, TIMESTAMP_SOURCE } from './retention.js';
import { errorText, excluderFor, type SkippedItem, type TargetProgress, type TargetSource } from './source.js';
import { mirrorTargetSchema, checkTarget, type MirrorTarget } from './spec.js';
import type { ObjectStore, StoredObject } from './store.js';

export interface MirrorOptions {
  signal?: AbortSignal;
  onProgress?: (p: TargetProgress) => void;
  /**
   * Watch mode: only these paths (absolute, or relative to the source) changed since the last run. Each is read
   * again (a folder with all below it) and compared with the manifest; the rest of the source and the
   * destination are not listed.
   */
  changedPaths?: string[];
  /** The time of the trash folder's name and that trash retention measures ages from; now when left out. */
  now?: Date;
}

export interface MirrorResult {
  /** Files uploaded (new or changed). */
  uploaded: number;
  /** Files removed from the mirror because they left the source (moved to the trash when it is on). */
  deleted: number;
  /** Bytes uploaded. */
  bytes: number;
  /** Files renamed or moved in the source and moved at the destination instead of being uploaded again. */
  moved: number;
  /** Versions put into the trash (replaced or deleted files). */
  trashed: number;
  /** Trash folders (`.cairn-trash/<timestamp>`) removed by the trash's retention. */
  trashRemoved: string[];
  /** Files already up to date. */
  unchanged: number;
  /** Source entries left out: unreadable files, symbolic links, names the mirror reserves. */
  skipped: SkippedItem[];
  /** Files that kept changing while they were uploaded; the next run uploads them again. */
  changed: string[];
}

/** Files uploaded at once: enough to hide an object store's latency, few enough to keep memory flat. */
const UPLOADS = 4;
/** Attempts for a file that changes while it is uploaded. */
const ATTEMPTS = 3;

/**
 * Keeps the destination (a folder or an S3 prefix) equal to the source folder: new and changed files are
 * uploaded, files that left the source are removed, renamed and moved files (same size and SHA-256) are moved at
 * the destination (a rename in a folder, a server-side copy and delete on S3), empty folders are kept. Changes
 * are found by size and mtime against a manifest at the destination (`.cairn-mirror.json`, written last), so a
 * run over an unchanged source uploads nothing. With `trash`, replaced and deleted versions go to
 * `.cairn-trash/<timestamp>/<path>` instead, and the trash's `keep` removes old trash folders.
 * Nothing is removed before the destination has answered: an unreachable one is a BACKEND_UNAVAILABLE error.
 * @example await runMirror({ kind: 'mirror', dest: 's3:http://127.0.0.1:9000/backups/docs' }, { path: '/home/me/docs' }, {})
 */
export async function runMirror(cfg: MirrorTarget, source: TargetSource, opts: MirrorOptions = {}): Promise<MirrorResult> {
  checkTarget(mirrorTargetSchema, cfg, 'mirror');
  const root = path.resolve(source.path);
  await checkMirrorSource(root, cfg.dest);
  const excluder = await excluderFor(source);
  const store = openStore(cfg.dest);
  try {
    const run = new MirrorRun(store, cfg, root, opts);
    return await run.run(await readManifest(store), excluder);
  } catch (err) {
    if ((err as Error).name === 'AbortError' || opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'mirror interrupted; the next run carries on', { cause: err });
    throw err;
  } finally {
    store.close();
  }
}

class MirrorRun {
  readonly result: MirrorResult = { uploaded: 0, deleted: 0, bytes: 0, moved: 0, trashed: 0, trashRemoved: [], unchanged: 0, skipped: [], changed: [] };
  readonly #stamp: string;
  readonly #now: Date;
  #files = 0;
  /** Whether the destination changed, so the manifest must be written. */
  #dirty = false;

  constructor(
    readonly store: ObjectStore,
    readonly cfg: MirrorTarget,
    readonly root: string,
    readonly opts: MirrorOptions,
  ) {
    this.#now = opts.now ?? new Date();
    this.#stamp = formatTimestamp(this.#now);
  }

  async run(old: Manifest, excluder: Awaited<ReturnType<typeof excluderFor>>): Promise<MirrorResult> {
    const watch = this.opts.changedPaths !== undefined;
    const state = watch ? await patchSource(old, this.root, this.opts.changedPaths!, excluder, this.result.skipped) : await scanSource(this.root, excluder, this.result.skipped);
    // Outside watch mode the destination is listed too, so objects lost or added behind the mirror's back are put right.
    const present = watch ? undefined : await this.#listMirrored();
    const next: Manifest = { version: 1, files: { ...old.files }, emptyDirs: [...old.emptyDirs] };
    try {
      await this.#sync(old, next, state, present);
    } catch (err) {
      // Record what was done before the failure, if the destination still answers; the failure is what matters.
      if (this.#dirty) await writeManifest(this.store, next).catch(() => undefined);
      throw err;
    }
    if (this.#dirty) await writeManifest(this.store, next);
    return this.result;
  }

  /**
   * Brings the destination in line, in stages: moves for renamed files, removals, stale empty-folder markers,
   * uploads, new markers, trash retention. `next` follows every step, so an interrupted run leaves a true manifest.
   * Uploads come after removals so that a path that turned from a folder into a file (or back) is free.
   */
  async #sync(old: Manifest, next: Manifest, state: SourceState, present: Map<string, number> | undefined): Promise<void> {
    const pending = [...state.files].filter(([rel, f]) => {
      const e = old.files[rel];
      return e === undefined || e.size !== f.size || e.mtimeMs !== f.mtimeMs || (present !== undefined && present.get(rel) !== f.size);
    });
    this.result.unchanged = state.files.size - pending.length;
    const gone = Object.keys(old.files).filter((rel) => !state.files.has(rel));
    for (const rel of gone) {
      if (present === undefined || present.has(rel)) continue;
      // Already missing at the destination: only the record goes.
      delete next.files[rel];
      this.#dirty = true;
    }
    const { toUpload, leftovers } = await this.#moveRenamed(old, next, pending, gone.filter((rel) => next.files[rel] !== undefined), present);
    const strays = present === undefined ? [] : [...present.keys()].filter((k) => !k.endsWith('/') && !state.files.has(k) && old.files[k] === undefined);
    await this.#remove([...leftovers, ...strays].sort(), next, present);

    const markers = present === undefined ? new Set(old.emptyDirs) : new Set([...present.keys()].filter((k) => k.endsWith('/')).map((k) => k.slice(0, -1)));
    // Deepest first, so a folder is empty by the time its own marker goes.
    for (const d of [...markers].filter((d) => !state.emptyDirs.has(d)).sort().reverse()) {
      await this.store.delete(`${d}/`);
      this.#dirty = true;
    }
    await this.#uploadAll(toUpload.sort(), next, present);
    for (const d of [...state.emptyDirs].filter((d) => !markers.has(d)).sort()) {
      await this.store.putFolder(`${d}/`);
      this.#dirty = true;
    }
    if (this.#dirty || next.emptyDirs.length !== state.emptyDirs.size || next.emptyDirs.some((d) => !state.emptyDirs.has(d))) {
      next.emptyDirs = [...state.emptyDirs];
      this.#dirty = true;
    }
    if (this.cfg.trash?.keep !== undefined) await this.#expireTrash();
  }

  /**
   * Moves at the destination each pending file whose content (size and SHA-256) is that of a file that left the
   * source, and drops from the pending ones a file that was only touched (same size and content, new mtime).
   * Returns what is left to upload and the files that left the source and were not moved.
   */
  async #moveRenamed(
    old: Manifest,
    next: Manifest,
    pending: [string, { size: number; mtimeMs: number }][],
    gone: string[],
    present: Map<string, number> | undefined,
  ): Promise<{ toUpload: string[]; leftovers: string[] }> {
    const goneBySize = new Map<number, string[]>();
    for (const rel of gone) goneBySize.set(old.files[rel].size, [...(goneBySize.get(old.files[rel].size) ?? []), rel]);
    const toUpload: string[] = [];
    for (const [rel, f] of pending) {
      this.opts.signal?.throwIfAborted();
      const known = old.files[rel];
      const touched = known !== undefined && known.size === f.size && (present === undefined || present.get(rel) === f.size);
      const candidates = known === undefined ? goneBySize.get(f.size) : undefined;
      const entry = touched || candidates?.length ? await this.#hashUnchanged(rel, f) : undefined;
      if (entry !== undefined && touched && entry.sha256 === known.sha256) {
        next.files[rel] = entry;
        this.#dirty = true;
        this.result.unchanged++;
        continue;
      }
      const from = entry && candidates?.find((c) => old.files[c].sha256 === entry.sha256);
      if (entry === undefined || from === undefined || !(await this.#tolerateMissing(() => this.store.move(from, rel), present))) {
        toUpload.push(rel);
        continue;
      }
      candidates!.splice(candidates!.indexOf(from), 1);
      delete next.files[from];
      next.files[rel] = entry;
      this.#dirty = true;
      this.result.moved++;
    }
    return { toUpload, leftovers: [...goneBySize.values()].flat() };
  }

  /** Removes files that left the source (or were never in it), into the trash when it is on. */
  async #remove(rels: string[], next: Manifest, present: Map<string, number> | undefined): Promise<void> {
    for (const rel of rels) {
      this.opts.signal?.throwIfAborted();
      if (this.cfg.trash === undefined) await this.store.delete(rel);
      else if (await this.#tolerateMissing(() => this.store.move(rel, this.#trashKey(rel)), present)) this.result.trashed++;
      delete next.files[rel];
      this.#dirty = true;
      this.result.deleted++;
    }
  }

  async #uploadAll(rels: string[], next: Manifest, present: Map<string, number> | undefined): Promise<void> {
    const limiter = new Limiter(UPLOADS);
    const settled = await Promise.allSettled(
      rels.map((rel) =>
        limiter.run(async () => {
          this.opts.signal?.throwIfAborted();
          const entry = await this.#upload(rel, present?.has(rel) ?? next.files[rel] !== undefined, present);
          if (entry !== undefined) {
            next.files[rel] = entry;
            this.#dirty = true;
          }
        }),
      ),
    );
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }

  /**
   * Runs a step on an object the manifest says is there. In watch mode the destination is not listed, so the
   * object may be missing: then the step is skipped (false). Other failures are thrown.
   */
  async #tolerateMissing(step: () => Promise<void>, present: Map<string, number> | undefined): Promise<boolean> {
    try {
      await step();
      return true;
    } catch (err) {
      if (present === undefined && (!(err instanceof CairnError) || err.code === 'NOT_FOUND')) return false;
      throw err;
    }
  }

  /** Every object at the destination except the manifest and the trash, by key. */
  async #listMirrored(): Promise<Map<string, number>> {
    const objects: StoredObject[] = await this.store.list();
    return new Map(objects.filter((o) => o.key !== MANIFEST && o.key !== `${TRASH}/` && !o.key.startsWith(`${TRASH}/`)).map((o) => [o.key, o.size]));
  }

  #trashKey(rel: string): string {
    return `${TRASH}/${this.#stamp}/${rel}`;
  }

  /** The file's SHA-256 if it still has the size and mtime it was listed with after reading; undefined otherwise. */
  async #hashUnchanged(rel: string, f: { size: number; mtimeMs: number }): Promise<ManifestEntry | undefined> {
    const abs = path.join(this.root, rel);
    const hash = createHash('sha256');
    try {
      await pipeline(createReadStream(abs), hash, { signal: this.opts.signal });
      const after = await fs.stat(abs);
      if (after.size !== f.size || after.mtimeMs !== f.mtimeMs) return undefined;
    } catch {
      return undefined;
    }
    return { size: f.size, mtimeMs: f.mtimeMs, sha256: hash.digest('hex') };
  }

  /**
   * Uploads one file, hashing it on the way, and checks afterwards that it did not change meanwhile (size and
   * mtime); a file that keeps changing is uploaded as it was last read and reported. The replaced version goes
   * to the trash first when the trash is on. Undefined when the file could not be read or kept changing.
   */
  async #upload(rel: string, replaces: boolean, present: Map<string, number> | undefined): Promise<ManifestEntry | undefined> {
    const abs = path.join(this.root, rel);
    if (replaces && this.cfg.trash !== undefined && (await this.#tolerateMissing(() => this.store.copy(rel, this.#trashKey(rel)), present))) {
      this.result.trashed++;
    }
    for (let attempt = 1; ; attempt++) {
      let handle;
      try {
        handle = await fs.open(abs, 'r');
      } catch (err) {
        this.result.skipped.push({ path: abs, error: errorText(err) });
        return undefined;
      }
      const before = await handle.stat();
      const hash = createHash('sha256');
      // Only the size seen at the start: a file that keeps growing (a log) would otherwise never end.
      const read = before.size === 0 ? (await handle.close(), Readable.from([])) : handle.createReadStream({ start: 0, end: before.size - 1 });
      const body = read.pipe(
        new Transform({
          transform: (chunk: Buffer, _enc, cb) => {
            hash.update(chunk);
            this.result.bytes += chunk.length;
            this.opts.onProgress?.({ files: this.#files, bytes: this.result.bytes, current: rel });
            cb(null, chunk);
          },
        }),
      );
      read.once('error', (err: Error) => body.destroy(err));
      try {
        await this.store.put(rel, body, this.opts.signal);
      } finally {
        // A failed upload may leave the file unread: close it now rather than when it is collected.
        read.destroy();
      }
      const after = await fs.stat(abs).catch(() => undefined);
      if (after !== undefined && after.size === before.size && after.mtimeMs === before.mtimeMs) {
        this.result.uploaded++;
        this.#files++;
        return { size: before.size, mtimeMs: before.mtimeMs, sha256: hash.digest('hex') };
      }
      if (attempt === ATTEMPTS) {
        this.result.uploaded++;
        this.result.changed.push(abs);
        return undefined;
      }
    }
  }

  /** Removes whole trash folders by the age in their names and their count; never this run's. */
  async #expireTrash(): Promise<void> {
    const objects = await this.store.list(`${TRASH}/`);
    const re = new RegExp(`^${TRASH}/(${TIMESTAMP_SOURCE})/`);
    const byStamp = new Map<string, string[]>();
    for (const o of objects) {
      const m = re.exec(o.key);
      if (m !== null) byStamp.set(m[1], [...(byStamp.get(m[1]) ?? []), o.key]);
    }
    const dated = [...byStamp.keys()].map((name) => ({ name, time: parseTimestamp(name) }));
    for (const old of expired(dated, this.cfg.trash!.keep, this.#now, new Set([this.#stamp]))) {
      for (const key of byStamp.get(old.name)!) await this.store.delete(key);
      this.result.trashRemoved.push(old.name);
    }
    this.result.trashRemoved.sort();
  }
}
