import fs from 'node:fs';
import path from 'node:path';
import { CairnError, noSpace, writesStop } from '../errors.js';
import { loadRange } from '../backend/backend.js';
import { createSpecial, toSeconds } from '../fs/apply.js';
import { isUtf8 } from '../fs/goquote.js';
import type { Node } from '../fs/node.js';
import type { Id } from '../repository/id.js';
import type { BlobLocation } from '../repository/master-index.js';
import type { Repository } from '../repository/repository.js';
import { SourceError, type WorkerPool } from '../repository/worker-pool.js';
import { keepsExisting, type FsOp, type OverwriteMode, type ProbeResult, type RestoreBlob, type RestoreBlobsResult } from '../repository/worker-protocol.js';
import { CRYPTO_OVERHEAD } from '../crypto/crypto.js';
import { mapLimit } from '../util/limit.js';
import { joinPath, showPath, type FsPath } from '../fs/fspath.js';
import { whyNoFolder } from '../fs/no-folder.js';
import { doubled } from '../util/typed.js';
import { RestorePlan } from './plan.js';

/** What a restore did (or, with `dryRun`, would do) to a path, as restic's restore -vv says it. */
export type RestoreAction = 'restored' | 'updated' | 'unchanged' | 'deleted';

export interface RestoreOptions {
  target: string;
  /** When something already in the target is replaced (restic's --overwrite; default `always`). */
  overwrite?: OverwriteMode;
  /** Remove what the target holds that the snapshot does not, in the folders restored (restic's --delete). */
  delete?: boolean;
  /** Write nothing: find out and report what a restore would do. */
  dryRun?: boolean;
  /** Each path restored, replaced, left as it was or deleted, with its size. */
  onAction?: (action: RestoreAction, snapPath: string, size: number) => void;
  /** Restore only what this selects: called with the path inside the snapshot, e.g. /home/a/file. */
  include?: (snapPath: string) => boolean;
  exclude?: (snapPath: string) => boolean;
  /** Read every restored file back and check it against the snapshot. */
  verify?: boolean;
  /** Set ownership; only root may, so it defaults to whether we run as root. */
  owner?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: { filesDone: number; bytesDone: number; filesTotal: number; bytesTotal: number; errors: number }) => void;
  onError?: (snapPath: string, message: string) => void;
}

export interface RestoreResult {
  /** Files whose content was written (would be, with `dryRun`). */
  filesRestored: number;
  /** Files left as they were: already right, or kept by the overwrite mode. */
  filesSkipped: number;
  /** Entries removed by `delete` (a folder counts once, with what it held). */
  filesDeleted: number;
  /** Bytes written (with `dryRun`: the size of the files a restore would write). */
  bytesWritten: number;
  bytesSkipped: number;
  errors: { path: string; message: string }[];
}

/** Gaps between needed blobs up to this size are read through rather than split into two reads. */
const MAX_GAP = 1024 * 1024;
const MAX_RANGE = 8 * 1024 * 1024;
/** Files per file-system batch sent to a worker. */
const BATCH = 512;

function safeName(node: Node, where: string): void {
  const name = node.name;
  const raw = node.nameRaw;
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || (raw && (raw.includes(0x2f) || raw.includes(0)))) {
    throw new CairnError('INTEGRITY', `refusing to restore a node named ${JSON.stringify(name)} in ${where}: it would escape the target`);
  }
}

function chunks<T>(items: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

/**
 * Restores a tree into a folder. The main thread plans (which blobs go where) and reads packs;
 * workers verify every blob and write it with synchronous calls, and set metadata in batches, so a
 * tree of many small files costs a few messages per hundred files rather than a libuv round trip
 * per system call. Files already holding the right content are skipped, so an interrupted
 * restore resumes. All-zero blocks are not written: sparse files stay sparse.
 *
 * A target that runs out of room (a full file system or disk quota), turns read-only (the kernel
 * does so after errors on the disk) or goes away (a network or FUSE mount whose server is gone)
 * stops the restore at once with one error that says how far it got (`NO_SPACE`, `UNWRITABLE`):
 * every later write would fail alike, and a line for each would bury the cause. What was written
 * stays, as after an interrupted restore, and running the same restore again once the target can
 * take it finishes it.
 */
export async function restoreTree(repo: Repository, pool: WorkerPool, rootTree: Id, rootPath: string, opts: RestoreOptions): Promise<RestoreResult> {
  const result: RestoreResult = { filesRestored: 0, filesSkipped: 0, filesDeleted: 0, bytesWritten: 0, bytesSkipped: 0, errors: [] };
  const planned = { files: 0 };
  try {
    return await restoreInto(result, planned, repo, pool, rootTree, rootPath, opts);
  } catch (err) {
    // From a worker: a CairnError whose message says what and where; from this thread: the system call's error.
    const stop = err instanceof CairnError && (err.code === 'NO_SPACE' || err.code === 'UNWRITABLE') ? { code: err.code, why: err.message } : writesStop(err);
    if (!stop) throw err;
    const done = `restore stopped with ${result.filesRestored + result.filesSkipped} of ${planned.files} files in place`;
    const again = 'run the same restore again, which keeps the files already restored';
    throw new CairnError(
      stop.code,
      stop.code === 'NO_SPACE'
        ? `the restore target is full (${stop.why}): ${done}; make room (or restore less with --include) and ${again}`
        : `the restore target cannot be written to (${stop.why}): ${done}; once it can (mounted read-write, or mounted again; a file system the kernel made read-only after disk errors needs checking first), ${again}`,
      { cause: err },
    );
  }
}

async function restoreInto(result: RestoreResult, planned: { files: number }, repo: Repository, pool: WorkerPool, rootTree: Id, rootPath: string, opts: RestoreOptions): Promise<RestoreResult> {
  const target = path.resolve(opts.target);
  const owner = opts.owner ?? process.getuid?.() === 0;
  const overwrite = opts.overwrite ?? 'always';
  const dry = opts.dryRun === true;
  const act = (action: RestoreAction, dest: FsPath, size: number): void => opts.onAction?.(action, snapPathOf(dest), size);
  const fail = (p: string, message: string): void => {
    result.errors.push({ path: p, message });
    opts.onError?.(p, message);
  };
  const aborted = (): void => {
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'restore interrupted');
  };
  // A node's path inside the snapshot is its path under the target with the snapshot's folder in
  // front; computed for messages rather than kept for every file.
  const snapBase = rootPath === '/' ? '' : rootPath;
  const snapPathOf = (dest: FsPath): string => snapBase + showPath(dest).slice(target === '/' ? 0 : target.length);

  let fresh = true;
  try {
    const st = fs.statSync(target);
    if (!st.isDirectory()) throw new CairnError('BAD_INPUT', `restore target ${target} exists and is not a directory`);
    fresh = fs.readdirSync(target).length === 0;
  } catch (err) {
    if (err instanceof CairnError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CairnError('BAD_INPUT', `cannot use ${target} as the restore target: ${whyNoFolder(target, err)}`, { cause: err });
  }

  // Walk the snapshot's trees; directories are kept only when they hold something selected.
  const plan = new RestorePlan();
  // The files whose content is restored (not later names of a hardlinked file), in walk order: BlobRefs refer to them by number.
  const fileList: number[] = [];
  const refs = new BlobRefs();
  const firstLink = new Map<string, number>();
  // For `delete`: the names each restored folder holds in the snapshot, selected or not, by its
  // number in the plan (-1: the target itself), as latin1 keys of their bytes.
  const snapNames = new Map<number, Set<string>>();
  const walk = async (treeId: Id, snapDir: string, destDir: FsPath, dirIndex: number): Promise<boolean> => {
    aborted();
    const tree = await repo.loadTree(treeId);
    if (opts.delete) snapNames.set(dirIndex, new Set(tree.nodes.map((n) => nameKey(n.nameRaw ?? Buffer.from(n.name)))));
    let any = false;
    for (const node of tree.nodes) {
      safeName(node, snapDir);
      const snapPath = snapDir === '/' ? `/${node.name}` : `${snapDir}/${node.name}`;
      const dest = joinPath(destDir, node.name, node.nameRaw);
      if (opts.exclude?.(snapPath)) continue;
      if (node.type === 'dir') {
        const i = plan.add(dest, node);
        const inside = node.subtree ? await walk(node.subtree, snapPath, dest, i) : false;
        // Nothing inside was kept either.
        if (!inside && opts.include && !opts.include(snapPath)) {
          plan.truncate(i);
          for (const k of snapNames.keys()) if (k >= i) snapNames.delete(k);
        } else any = true;
        continue;
      }
      if (opts.include && !opts.include(snapPath)) continue;
      any = true;
      const i = plan.add(dest, node);
      const linkKey = node.type === 'file' && (node.links ?? 1) > 1 && node.inode ? `${node.device_id ?? 0}:${node.inode}` : null;
      const first = linkKey ? firstLink.get(linkKey) : undefined;
      if (first !== undefined) plan.linkTo.set(i, first);
      else if (node.type === 'file') {
        if (linkKey) firstLink.set(linkKey, i);
        const content = node.content ?? [];
        plan.firstRef[i] = refs.count;
        plan.blobs[i] = content.length;
        plan.remaining[i] = content.length;
        fileList.push(i);
        for (const id of content) {
          const loc = repo.index.lookup('data', id);
          if (!loc) {
            plan.failed[i] = 1;
            fail(snapPath, `data blob ${id} is missing from the index`);
            break;
          }
          refs.add(i, id, plan.size[i], loc);
          plan.size[i] += refs.plainSize(refs.count - 1);
        }
      }
    }
    return any;
  };
  const { tree: start } = await findSubtree(repo, rootTree, rootPath);
  await walk(start, rootPath === '/' ? '/' : rootPath, target, -1);
  const selected = (p: string): boolean => !opts.exclude?.(p) && (!opts.include || opts.include(p));

  const files = fileList.filter((f) => !plan.failed[f]);
  planned.files = files.length;
  const progress = { filesDone: 0, bytesDone: 0, filesTotal: files.length, bytesTotal: files.reduce((s, f) => s + plan.size[f], 0), errors: 0 };
  const report = (): void => {
    progress.errors = result.errors.length;
    opts.onProgress?.(progress);
  };

  // What is in the way of a node: removed when the node replaces it (a folder with entries only
  // with `delete`); false when it stays, with the error reported.
  const clear = (dest: FsPath, busyDir: boolean): boolean => {
    if (busyDir && !opts.delete) {
      fail(snapPathOf(dest), 'a folder with entries is in the way (restore --delete replaces it)');
      return false;
    }
    if (!dry) fs.rmSync(dest, { recursive: true, force: true });
    return true;
  };
  if (!dry) {
    makeFolder(target, 'the restore target');
    for (let i = 0; i < plan.count; i++) {
      if (plan.type(i) !== 'dir') continue;
      const dest = plan.dest[i];
      if (!fresh) {
        // Something else where a folder goes is replaced, as restic does, whatever the overwrite
        // mode: a symlink there would lead the restore out of the target.
        const st = fs.lstatSync(dest, { throwIfNoEntry: false });
        if (st?.isDirectory()) continue;
        if (st) fs.rmSync(dest, { force: true });
      }
      makeFolder(dest, 'a folder of the restore');
    }
  }

  // Files in a target that was not empty: what is there decides (see ProbeResult). Files left as
  // they are count as skipped; those already right get their metadata set again, as restic does.
  const kept = new Uint8Array(plan.count);
  const replaced = new Uint8Array(plan.count);
  let todo = files;
  if (!fresh) {
    todo = [];
    const probes = await mapLimit(chunks(files, BATCH), pool.size * 2, (batch) =>
      pool.fsBatch(batch.map((f): FsOp => {
        const { path: at, size, blobs } = checkOp(refs, plan, f);
        return { op: 'probe', path: at, size, blobs, mtime: mtimeOf(plan, f), overwrite };
      })),
    );
    probes.flat().forEach((r, k) => {
      const f = files[k];
      const found: ProbeResult | string = typeof r === 'object' && r !== null ? r.probe : String(r);
      if (found === 'skip' || found === 'same') {
        kept[f] = found === 'skip' ? SKIP : SAME;
        result.filesSkipped++;
        result.bytesSkipped += plan.size[f];
        progress.filesDone++;
        progress.bytesDone += plan.size[f];
        act('unchanged', plan.dest[f], plan.size[f]);
      } else if (found === 'absent') {
        todo.push(f);
      } else if (found === 'differs' || found === 'busy-dir') {
        // Replace rather than rewrite in place: the old file may be a hardlink whose other names must keep their content.
        if (clear(plan.dest[f], found === 'busy-dir')) {
          replaced[f] = 1;
          todo.push(f);
        } else plan.failed[f] = 1;
      } else {
        plan.failed[f] = 1;
        fail(snapPathOf(plan.dest[f]), found);
      }
    });
  }
  const done = (f: number): void => act(replaced[f] ? 'updated' : 'restored', plan.dest[f], plan.size[f]);

  if (dry) {
    for (const f of todo) {
      result.filesRestored++;
      result.bytesWritten += plan.size[f];
      done(f);
    }
    await placeOthers(plan, kept, { dry, overwrite, clear, act, fail: (dest, m) => fail(snapPathOf(dest), m) });
    if (opts.delete) removeUnexpected(plan, snapNames, target, { dry, act, result, selected, snapPathOf });
    report();
    return result;
  }

  // Files of one blob are created by the write of that blob; others are created first, at full size.
  const toCreate = [...todo.filter((f) => plan.blobs[f] === 0), ...todo.filter((f) => plan.blobs[f] > 1)];
  const created = await mapLimit(chunks(toCreate, BATCH), pool.size * 2, (batch) =>
    pool.fsBatch(batch.map((f): FsOp => ({ op: 'create', path: plan.dest[f], size: plan.size[f] }))),
  );
  created.flat().forEach((err, k) => {
    if (typeof err !== 'string') return;
    plan.failed[toCreate[k]] = 1;
    fail(snapPathOf(plan.dest[toCreate[k]]), err);
  });
  for (const f of todo) {
    if (plan.blobs[f] !== 0 || plan.failed[f]) continue;
    result.filesRestored++;
    progress.filesDone++;
    done(f);
  }

  const markFailed = (f: number, message: string): void => {
    if (plan.failed[f]) return;
    plan.failed[f] = 1;
    fail(snapPathOf(plan.dest[f]), message);
  };
  // Every place each needed blob goes, ordered by pack and offset, then cut into ranges to read.
  const wanted = new Uint8Array(plan.count);
  for (const f of todo) wanted[f] = 1;
  const order = refs.order((f) => wanted[f] === 1 && !plan.failed[f]);
  // A pack that is a local file is read by the worker that restores its blobs, a few at a time
  // (see restoreBlobsFile), two ranges per worker so that none waits for the next; others are
  // loaded here, one range per worker plus one loading: enough to keep the workers busy, little in memory.
  const localPath = repo.backend.localPath;
  // Set once a write found the target full, read-only or gone: no range is started after it,
  // those in flight finish (their files done are counted), and the restore stops with that.
  let stopped: RestoreBlobsResult['stopped'];
  await mapLimit(refs.ranges(order), localPath ? pool.size * 2 : pool.size + 1, async ({ packId, from, to }) => {
    aborted();
    if (stopped) return;
    const start = refs.offset[order[from]];
    const last = order[to - 1];
    const end = refs.offset[last] + refs.length[last];
    // Each blob once, with the references that need it (refs of one blob follow each other).
    const groups: number[] = [];
    for (let j = from; j < to; j++) if (j === from || !refs.sameBlob(order[j], order[j - 1])) groups.push(j);
    groups.push(to);
    const eachDest = (g: number, fn: (file: number, r: number) => void): void => {
      for (let j = groups[g]; j < groups[g + 1]; j++) fn(refs.file[order[j]], order[j]);
    };
    const failAll = (err: unknown): void => {
      for (let g = 0; g + 1 < groups.length; g++) eachDest(g, (f) => markFailed(f, `pack ${packId}: ${(err as Error).message}`));
    };
    // Offsets from `base`: the range's start when it is loaded here, the file's when a worker reads it.
    const blobsFrom = (base: number): RestoreBlob[] => {
      const blobs: RestoreBlob[] = [];
      for (let g = 0; g + 1 < groups.length; g++) {
        const r = order[groups[g]];
        const dests: RestoreBlob['dests'] = [];
        eachDest(g, (f, d) => {
          if (!plan.failed[f]) dests.push({ path: plan.dest[f], offset: refs.fileOffset[d], create: plan.blobs[f] === 1 ? plan.size[f] : undefined });
        });
        blobs.push({ id: refs.id(r), offset: refs.offset[r] - base, length: refs.length[r], uncompressedLength: refs.uncompressedLength(r), dests });
      }
      return blobs;
    };
    let restored: RestoreBlobsResult;
    if (localPath) {
      let file: string;
      try {
        file = await localPath({ type: 'data', name: packId });
      } catch (err) {
        return failAll(err);
      }
      try {
        restored = await pool.restoreBlobsFile(file, blobsFrom(0));
      } catch (err) {
        // The pack cannot be opened (gone, or not readable): its blobs fail, as a failed load's.
        if (err instanceof SourceError) return failAll(err);
        throw err;
      }
    } else {
      let data: Buffer;
      const buf = pool.buffer(end - start);
      try {
        data = await loadRange(repo.backend, { type: 'data', name: packId }, start, end - start, buf);
      } catch (err) {
        pool.recycle(buf);
        return failAll(err);
      }
      if (data.buffer !== buf.buffer) pool.recycle(buf);
      restored = await pool.restoreBlobs(data, blobsFrom(start));
    }
    const { errors, written } = restored;
    stopped ??= restored.stopped;
    result.bytesWritten += written;
    progress.bytesDone += written;
    errors.forEach((error, g) => {
      eachDest(g, (f) => {
        if (error) markFailed(f, `pack ${packId}: ${error}`);
        else if (--plan.remaining[f] === 0 && !plan.failed[f]) {
          result.filesRestored++;
          progress.filesDone++;
          done(f);
        }
      });
    });
    report();
  });
  if (stopped) throw new CairnError(stopped.code, stopped.message);

  // Damaged files are removed rather than left looking complete.
  for (const f of todo) if (plan.failed[f]) fs.rmSync(plan.dest[f], { force: true });

  await placeOthers(plan, kept, { dry, overwrite, clear, act, fail: (dest, m) => fail(snapPathOf(dest), m) });
  // Before folders get their times: removing entries changes them.
  if (opts.delete) removeUnexpected(plan, snapNames, target, { dry, act, result, selected, snapPathOf });

  // Metadata last: everything but folders in parallel batches, then folders deepest first.
  const leaves: number[] = [];
  const dirs: number[] = [];
  for (let i = 0; i < plan.count; i++) {
    const type = plan.type(i);
    const to = plan.linkTo.get(i);
    if (type === 'dir') dirs.push(i);
    else if (type !== 'socket' && !plan.failed[i] && kept[i] !== SKIP && !(to !== undefined && plan.failed[to])) leaves.push(i);
  }
  dirs.reverse();
  const metaErrors = async (list: number[], batches: number): Promise<void> => {
    const res = await mapLimit(chunks(list, BATCH), batches, (b) => pool.fsBatch(b.map((i): FsOp => ({ op: 'meta', path: plan.dest[i], node: plan.meta(i), owner }))));
    res.flat().forEach((err, k) => {
      if (typeof err === 'string') fail(snapPathOf(plan.dest[list[k]]), `setting metadata: ${err}`);
    });
  };
  await metaErrors(leaves, pool.size * 2);
  await metaErrors(dirs, 1);

  if (opts.verify) {
    const ok = files.filter((f) => !plan.failed[f] && kept[f] !== SKIP);
    const res = await mapLimit(chunks(ok, BATCH), pool.size * 2, (b) => pool.fsBatch(b.map((f) => checkOp(refs, plan, f))));
    res.flat().forEach((right, k) => {
      if (right !== true) fail(snapPathOf(plan.dest[ok[k]]), 'verification after restore failed: content differs');
    });
  }
  report();
  return result;
}

/**
 * Makes folder `dir` (and any missing above it). A folder that cannot be made ends the restore
 * with what stands in the way (`BAD_INPUT`; a full target is `NO_SPACE`, see restoreTree), not
 * with the system call's bare error (see whyNoFolder).
 */
function makeFolder(dir: FsPath, what: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    if (noSpace(err)) throw err;
    throw new CairnError('BAD_INPUT', `cannot create ${what} ${showPath(dir)}: ${whyNoFolder(dir, err)}`, { cause: err });
  }
}

/** A file kept as it is by the overwrite mode, or already right (its metadata is set again). */
const SKIP = 1;
const SAME = 2;

/** A name's bytes as a string key (latin1 maps each byte to one character). */
function nameKey(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
}

/** A node's modification time in seconds, or null when it does not parse. */
function mtimeOf(plan: RestorePlan, i: number): number | null {
  const m = plan.meta(i).mtime;
  if (typeof m === 'number') return m;
  try {
    return toSeconds(m);
  } catch {
    return null;
  }
}

interface PlaceContext {
  dry: boolean;
  overwrite: OverwriteMode;
  clear: (dest: FsPath, busyDir: boolean) => boolean;
  act: (action: RestoreAction, dest: FsPath, size: number) => void;
  fail: (dest: FsPath, message: string) => void;
}

/**
 * Second and later names of hardlinked files, symlinks and special files, in walk order. What is
 * already at such a place is kept or replaced as for files: `never` keeps it, `if-newer` keeps it
 * unless the node's modification time is later (to the microsecond).
 */
async function placeOthers(plan: RestorePlan, kept: Uint8Array, o: PlaceContext): Promise<void> {
  for (const i of [...plan.linkTo.keys(), ...plan.special.keys()].sort((a, b) => a - b)) {
    const dest = plan.dest[i];
    const to = plan.linkTo.get(i);
    const node = plan.special.get(i);
    if ((to !== undefined && plan.failed[to]) || node?.type === 'socket') continue;
    try {
      let st: fs.BigIntStats | null = null;
      try {
        st = fs.lstatSync(dest, { bigint: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
      }
      if (st) {
        if (keepsExisting(o.overwrite, mtimeOf(plan, i), st.mtimeNs)) {
          kept[i] = SKIP;
          o.act('unchanged', dest, 0);
          continue;
        }
        if (!o.clear(dest, st.isDirectory() && fs.readdirSync(dest).length > 0)) {
          plan.failed[i] = 1;
          continue;
        }
      }
      o.act(st ? 'updated' : 'restored', dest, 0);
      if (o.dry) continue;
      if (to !== undefined) {
        fs.linkSync(plan.dest[to], dest);
      } else if (node!.type === 'symlink') {
        fs.symlinkSync(node!.linktarget_raw ? Buffer.from(node!.linktarget_raw, 'base64') : (node!.linktarget ?? ''), dest);
      } else {
        if (typeof dest !== 'string') throw new CairnError('BAD_INPUT', 'special files whose path is not UTF-8 are not restored');
        await createSpecial(dest, node!);
      }
    } catch (err) {
      if (writesStop(err)) throw err;
      plan.failed[i] = 1;
      o.fail(dest, (err as Error).message);
    }
  }
}

/**
 * restic's --delete: in each folder restored (and the target), what the snapshot's folder does not
 * hold goes, unless the include and exclude patterns leave its path out of the restore.
 */
function removeUnexpected(
  plan: RestorePlan,
  snapNames: Map<number, Set<string>>,
  target: string,
  o: { dry: boolean; act: PlaceContext['act']; result: RestoreResult; selected: (snapPath: string) => boolean; snapPathOf: (dest: FsPath) => string },
): void {
  for (const [i, names] of snapNames) {
    if (i >= 0 && plan.failed[i]) continue;
    const dir = i < 0 ? target : plan.dest[i];
    let entries: Buffer[];
    try {
      entries = fs.readdirSync(dir, { encoding: 'buffer' });
    } catch {
      continue;
    }
    for (const e of entries.sort(Buffer.compare)) {
      if (names.has(nameKey(e))) continue;
      const dest = joinPath(dir, e.toString('utf8'), isUtf8(e) ? undefined : e);
      if (!o.selected(o.snapPathOf(dest))) continue;
      o.result.filesDeleted++;
      o.act('deleted', dest, 0);
      if (!o.dry) fs.rmSync(dest, { recursive: true, force: true });
    }
  }
}

/** The check a resumed or verified restore makes of a file: its size and its blobs' ids and sizes. */
function checkOp(refs: BlobRefs, plan: RestorePlan, f: number): Extract<FsOp, { op: 'check' }> {
  const blobs: { id: Id; size: number }[] = [];
  for (let r = plan.firstRef[f]; r < plan.firstRef[f] + plan.blobs[f]; r++) blobs.push({ id: refs.id(r), size: refs.plainSize(r) });
  return { op: 'check', path: plan.dest[f], size: plan.size[f], blobs };
}

/**
 * Every place a blob goes: the file (its number in the restore plan), the blob's id, where in
 * the file, and where the blob sits in which pack, in growable typed arrays. A restore of many
 * small files kept several objects for each (~200 bytes), then each file's list of ids (~120
 * bytes a blob); this keeps 57 bytes. A file's blobs are added in order, one after another.
 */
class BlobRefs {
  count = 0;
  file = new Uint32Array(1024);
  /** The blobs' ids, 32 bytes each. */
  #ids = Buffer.alloc(1024 * 32);
  fileOffset = new Float64Array(1024);
  pack = new Uint32Array(1024);
  offset = new Uint32Array(1024);
  length = new Uint32Array(1024);
  /** The uncompressed length plus one; 0 for a blob stored uncompressed. */
  #ulen = new Uint32Array(1024);
  readonly #packIds: Id[] = [];
  readonly #packNumbers = new Map<Id, number>();

  /** Adds a reference to blob `id` (64 hex digits: one the index knows) at `loc`. */
  add(file: number, id: Id, fileOffset: number, loc: BlobLocation): void {
    if (this.count === this.file.length) this.#grow();
    let pack = this.#packNumbers.get(loc.packId);
    if (pack === undefined) {
      pack = this.#packIds.push(loc.packId) - 1;
      this.#packNumbers.set(loc.packId, pack);
    }
    const r = this.count++;
    this.file[r] = file;
    this.#ids.write(id, r * 32, 32, 'hex');
    this.fileOffset[r] = fileOffset;
    this.pack[r] = pack;
    this.offset[r] = loc.offset;
    this.length[r] = loc.length;
    this.#ulen[r] = loc.uncompressedLength === undefined ? 0 : loc.uncompressedLength + 1;
  }

  id(r: number): Id {
    return this.#ids.toString('hex', r * 32, r * 32 + 32);
  }

  plainSize(r: number): number {
    return this.#ulen[r] === 0 ? this.length[r] - CRYPTO_OVERHEAD : this.#ulen[r] - 1;
  }

  uncompressedLength(r: number): number | undefined {
    return this.#ulen[r] === 0 ? undefined : this.#ulen[r] - 1;
  }

  sameBlob(a: number, b: number): boolean {
    return this.pack[a] === this.pack[b] && this.offset[a] === this.offset[b];
  }

  /** The references of the files `keep` takes (by number), sorted by pack and offset. */
  order(keep: (file: number) => boolean): Uint32Array {
    let n = 0;
    const order = new Uint32Array(this.count);
    for (let r = 0; r < this.count; r++) if (keep(this.file[r])) order[n++] = r;
    return order.subarray(0, n).sort((a, b) => this.pack[a] - this.pack[b] || this.offset[a] - this.offset[b]);
  }

  /**
   * Cuts `order` into ranges to read: one pack each, no longer than MAX_RANGE unless one blob is,
   * and without gaps of unneeded bytes over MAX_GAP; the references to one blob stay together.
   */
  ranges(order: Uint32Array): { packId: Id; from: number; to: number }[] {
    const out: { packId: Id; from: number; to: number }[] = [];
    let from = 0;
    let start = 0;
    let end = 0;
    for (let j = 0; j < order.length; j++) {
      const r = order[j];
      const blobEnd = this.offset[r] + this.length[r];
      const cut = this.pack[r] !== this.pack[order[from]] || this.offset[r] - end > MAX_GAP || blobEnd - start > MAX_RANGE;
      if (j > from && cut && !this.sameBlob(r, order[j - 1])) {
        out.push({ packId: this.#packIds[this.pack[order[from]]], from, to: j });
        from = j;
      }
      if (j === from) {
        start = this.offset[r];
        end = 0;
      }
      end = Math.max(end, blobEnd);
    }
    if (order.length > from) out.push({ packId: this.#packIds[this.pack[order[from]]], from, to: order.length });
    return out;
  }

  #grow(): void {
    this.file = doubled(this.file);
    const ids = Buffer.alloc(this.#ids.length * 2);
    this.#ids.copy(ids);
    this.#ids = ids;
    this.fileOffset = doubled(this.fileOffset);
    this.pack = doubled(this.pack);
    this.offset = doubled(this.offset);
    this.length = doubled(this.length);
    this.#ulen = doubled(this.#ulen);
  }
}

/** Follows `subPath` (e.g. /home/a) from a snapshot's root tree to the tree of that folder. */
export async function findSubtree(repo: Repository, root: Id, subPath: string): Promise<{ tree: Id }> {
  let tree = root;
  for (const part of subPath.split('/').filter(Boolean)) {
    const t = await repo.loadTree(tree);
    const n = t.nodes.find((x) => x.name === part);
    if (!n) throw new CairnError('NOT_FOUND', `path ${subPath} is not in the snapshot`);
    if (n.type !== 'dir' || !n.subtree) throw new CairnError('BAD_INPUT', `path ${subPath} in the snapshot is not a directory`);
    tree = n.subtree;
  }
  return { tree };
}
