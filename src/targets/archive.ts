import type { Stats } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { addTarEntry } from '../util/tar-entry.js';
import yazl from 'yazl';
import type { Excluder } from '../archiver/excludes.js';
import { CairnError } from '../errors.js';
import { compressor, EXTENSIONS, type StreamCodec } from './codecs.js';
import { openStore } from './open-store.js';
import { expired, formatTimestamp, parseTimestamp, TIMESTAMP_SOURCE } from './retention.js';
import {
  checkStillThere,
  errorText,
  excluderFor,
  fixedSizeReader,
  walkTree,
  type SkippedItem,
  type TargetProgress,
  type TargetSource,
  type TreeEntry,
} from './source.js';
import { archiveTargetSchema, checkTarget, type ArchiveTarget } from './spec.js';
import type { ObjectStore } from './store.js';

export interface ArchiveOptions {
  signal?: AbortSignal;
  onProgress?: (p: TargetProgress) => void;
  /** The time written into the names and that retention measures ages from; now when left out. */
  now?: Date;
}

export interface ArchiveResult {
  /** Files read (each file of a folder counts). */
  files: number;
  /** Bytes read from the sources. */
  bytes: number;
  /** Bytes written to the destination (compressed). */
  stored: number;
  /** Names written, relative to the destination, one per source. */
  written: string[];
  /** Older copies removed by retention, relative to the destination. */
  removed: string[];
  /** Files and folders that could not be read and were left out. */
  skipped: SkippedItem[];
  /** Files whose size changed while they were read: their copy may be inconsistent. */
  changed: string[];
}

/**
 * Writes a timestamped compressed copy of each source to the target's folder or S3 prefix: a file becomes
 * `<name>.<timestamp>.<gz|zz|br|zst|zip>`, a folder one tar (`<name>.<timestamp>.tar.gz`, …) or zip of it.
 * Each copy is streamed (memory stays flat) and appears atomically. After every source is written, retention
 * removes older copies of the same sources by `keep` (age and count of the timestamps in their names), never
 * the copy just written and never a file whose name does not follow the pattern.
 * Throws NOT_FOUND when a source is missing or disappears during the run (retention is then not applied),
 * BACKEND_UNAVAILABLE when the destination cannot be written, BAD_INPUT for a bad configuration.
 * @example await runArchive({ kind: 'archive', dest: '/srv/copies', codec: 'zstd', keep: { count: 7 } }, [{ path: '/etc' }], {})
 */
export async function runArchive(cfg: ArchiveTarget, sources: TargetSource[], opts: ArchiveOptions = {}): Promise<ArchiveResult> {
  checkTarget(archiveTargetSchema, cfg, 'archive');
  const now = opts.now ?? new Date();
  const stamp = formatTimestamp(now);
  const roots = await resolveSources(sources);
  const result: ArchiveResult = { files: 0, bytes: 0, stored: 0, written: [], removed: [], skipped: [], changed: [] };
  const store = openStore(cfg.dest);
  try {
    for (const root of roots) {
      opts.signal?.throwIfAborted();
      const name = `${root.name}.${stamp}.${root.stat.isDirectory() && cfg.codec !== 'zip' ? 'tar.' : ''}${EXTENSIONS[cfg.codec]}`;
      const run = new SourceRun(root, result, opts);
      result.stored += await writeCopy(store, name, run, cfg.codec, opts.signal);
      result.written.push(name);
    }
    result.removed = await applyRetention(store, cfg, roots, new Set(result.written), now);
  } catch (err) {
    if ((err as Error).name === 'AbortError' || opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'archive interrupted; no partial copy was left', { cause: err });
    throw err;
  } finally {
    store.close();
  }
  return result;
}

interface SourceRoot {
  abs: string;
  name: string;
  stat: Stats;
  excluder: Excluder;
}

async function resolveSources(sources: TargetSource[]): Promise<SourceRoot[]> {
  if (sources.length === 0) throw new CairnError('BAD_INPUT', 'an archive needs at least one source');
  const roots: SourceRoot[] = [];
  const names = new Map<string, string>();
  for (const s of sources) {
    const abs = path.resolve(s.path);
    let stat: Stats;
    try {
      stat = await fs.stat(abs);
    } catch (err) {
      throw new CairnError('NOT_FOUND', `source ${abs} cannot be read (${errorText(err)})`, { cause: err });
    }
    if (!stat.isFile() && !stat.isDirectory()) throw new CairnError('BAD_INPUT', `source ${abs} is neither a file nor a folder`);
    const name = path.basename(abs) || 'root';
    const other = names.get(name);
    if (other !== undefined) throw new CairnError('BAD_INPUT', `sources ${other} and ${abs} would both be archived as ${JSON.stringify(name)}: use separate targets`);
    names.set(name, abs);
    roots.push({ abs, name, stat, excluder: await excluderFor(s) });
  }
  return roots;
}

/** The reading side of one source: counts progress, collects skipped and changed files, owns the open files. */
class SourceRun {
  readonly #open = new Set<Readable>();

  constructor(
    readonly root: SourceRoot,
    readonly result: ArchiveResult,
    readonly opts: ArchiveOptions,
  ) {}

  entries(): AsyncGenerator<TreeEntry> {
    return walkTree(this.root.abs, this.root.excluder, (s) => this.result.skipped.push(s));
  }

  /** Opens a file for reading as a stream of exactly its size at opening; undefined (and reported) when it cannot be read. */
  async open(abs: string, display: string): Promise<{ body: Readable; stat: Stats } | undefined> {
    let handle;
    try {
      handle = await fs.open(abs, 'r');
    } catch (err) {
      await checkStillThere(this.root.abs);
      this.result.skipped.push({ path: abs, error: errorText(err) });
      return undefined;
    }
    const stat = await handle.stat();
    this.result.files++;
    this.progress(display);
    const body = fixedSizeReader(
      handle,
      stat.size,
      () => this.result.changed.push(abs),
      (n) => {
        this.result.bytes += n;
        this.progress(display);
      },
    );
    this.#open.add(body);
    body.once('close', () => this.#open.delete(body));
    return { body, stat };
  }

  /** Closes files still open when the copy failed part way. */
  release(): void {
    for (const body of this.#open) body.destroy();
  }

  progress(current: string): void {
    this.opts.onProgress?.({ files: this.result.files, bytes: this.result.bytes, current });
  }
}

/** Streams one source's copy into the store; resolves to the bytes stored. */
async function writeCopy(store: ObjectStore, name: string, run: SourceRun, codec: ArchiveTarget['codec'], signal?: AbortSignal): Promise<number> {
  const out = new PassThrough();
  const produce = codec === 'zip' ? produceZip(run, out) : produceCompressed(run, codec, out);
  // A destination that fails stops the reading side too, instead of leaving it waiting to be read.
  const stored = store.put(name, out, signal).catch((err: unknown) => {
    out.destroy(err as Error);
    throw err;
  });
  const [made, put] = await Promise.allSettled([produce, stored]);
  run.release();
  // A source that failed (vanished, say) explains a failed upload better than the upload's own error does;
  // a stream torn down because the upload failed ("premature close") does not.
  if (made.status === 'rejected' && (made.reason instanceof CairnError || put.status === 'fulfilled')) {
    out.destroy();
    throw made.reason;
  }
  if (put.status === 'rejected') throw put.reason;
  return put.value;
}

async function produceCompressed(run: SourceRun, codec: StreamCodec, out: PassThrough): Promise<void> {
  if (run.root.stat.isFile()) {
    const opened = await run.open(run.root.abs, run.root.name);
    if (opened === undefined) throw new CairnError('NOT_FOUND', `source ${run.root.abs} cannot be read (${run.result.skipped.at(-1)?.error})`);
    await pipeline(opened.body, compressor(codec), out);
    return;
  }
  const pack = tar.pack();
  const filled = fillTar(pack, run).catch((err: unknown) => {
    pack.destroy(err as Error);
    throw err;
  });
  const [fill, piped] = await Promise.allSettled([filled, pipeline(pack, compressor(codec), out)]);
  if (fill.status === 'rejected') throw fill.reason;
  if (piped.status === 'rejected') throw piped.reason;
}

/** The folder as a POSIX tar (pax headers for long or non-ASCII names), under a top folder named like the source. */
async function fillTar(pack: tar.Pack, run: SourceRun): Promise<void> {
  const top = run.root.name;
  await addTarEntry(pack, { ...ownership(run.root.stat), name: `${top}/`, type: 'directory' });
  for await (const e of run.entries()) {
    run.opts.signal?.throwIfAborted();
    const name = `${top}/${e.rel}`;
    if (e.kind === 'dir') await addTarEntry(pack, { ...ownership(e.stat), name: `${name}/`, type: 'directory' });
    else if (e.kind === 'symlink') await addTarEntry(pack, { ...ownership(e.stat), name, type: 'symlink', linkname: await fs.readlink(e.abs) });
    else {
      const opened = await run.open(e.abs, name);
      if (opened === undefined) continue;
      await addTarEntry(pack, { ...ownership(opened.stat), name, type: 'file', size: opened.stat.size }, opened.body);
    }
  }
  await checkStillThere(run.root.abs);
  pack.finalize();
}

function ownership(stat: Stats): Partial<tar.Header> & { name: string } {
  return { name: '', mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, mtime: stat.mtime };
}

/** A zip (deflate, zip64 when needed) of the file, or of the folder under a top folder named like the source. */
async function produceZip(run: SourceRun, out: PassThrough): Promise<void> {
  const zip = new yazl.ZipFile();
  const failed = new Promise<never>((_, reject) => zip.on('error', reject));
  const piped = pipeline(zip.outputStream as Readable, out);
  const fill = async () => {
    if (run.root.stat.isFile()) {
      await addZipFile(zip, run, run.root.abs, run.root.name);
    } else {
      const top = run.root.name;
      zip.addEmptyDirectory(top, { mtime: run.root.stat.mtime, mode: run.root.stat.mode });
      for await (const e of run.entries()) {
        run.opts.signal?.throwIfAborted();
        const name = `${top}/${e.rel}`;
        if (e.kind === 'dir') zip.addEmptyDirectory(name, { mtime: e.stat.mtime, mode: e.stat.mode });
        // Info-ZIP's convention, which unzip restores: the link's mode, with its target as the contents.
        else if (e.kind === 'symlink') zip.addBuffer(Buffer.from(await fs.readlink(e.abs)), name, { mtime: e.stat.mtime, mode: e.stat.mode, compress: false });
        else await addZipFile(zip, run, e.abs, name);
      }
      await checkStillThere(run.root.abs);
    }
    zip.end();
  };
  await Promise.race([Promise.all([fill(), piped]), failed]);
}

async function addZipFile(zip: yazl.ZipFile, run: SourceRun, abs: string, name: string): Promise<void> {
  const opened = await run.open(abs, name);
  if (opened === undefined) {
    if (abs === run.root.abs) throw new CairnError('NOT_FOUND', `source ${abs} cannot be read (${run.result.skipped.at(-1)?.error})`);
    return;
  }
  const done = finished(opened.body);
  zip.addReadStream(opened.body, name, { size: opened.stat.size, mtime: opened.stat.mtime, mode: opened.stat.mode });
  await done;
}

/** The names of copies a source's retention may consider: `<name>.<timestamp>.<known extension>` and nothing else. */
function copyPattern(name: string): RegExp {
  const exts = [...new Set(Object.values(EXTENSIONS))].flatMap((e) => [e, `tar\\.${e}`]).join('|');
  return new RegExp(`^${name.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}\\.(${TIMESTAMP_SOURCE})\\.(?:${exts})$`);
}

async function applyRetention(store: ObjectStore, cfg: ArchiveTarget, roots: SourceRoot[], written: ReadonlySet<string>, now: Date): Promise<string[]> {
  if (cfg.keep === undefined) return [];
  const objects = await store.list();
  const removed: string[] = [];
  for (const root of roots) {
    const re = copyPattern(root.name);
    const copies = objects.flatMap((o) => {
      const m = re.exec(o.key);
      return m === null ? [] : [{ name: o.key, time: parseTimestamp(m[1]) }];
    });
    for (const old of expired(copies, cfg.keep, now, written)) {
      await store.delete(old.name);
      removed.push(old.name);
    }
  }
  return removed.sort();
}
