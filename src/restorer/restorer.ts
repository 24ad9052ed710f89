import fs from 'node:fs';
import path from 'node:path';
import { CairnError } from '../errors.js';
import { loadRange } from '../backend/backend.js';
import { createSpecial } from '../fs/apply.js';
import type { Node } from '../fs/node.js';
import type { Id } from '../repository/id.js';
import type { BlobLocation } from '../repository/master-index.js';
import type { Repository } from '../repository/repository.js';
import type { WorkerPool } from '../repository/worker-pool.js';
import type { FsOp, RestoreBlob } from '../repository/worker-protocol.js';
import { CRYPTO_OVERHEAD } from '../crypto/crypto.js';
import { mapLimit } from '../util/limit.js';
import { joinPath, type FsPath } from '../fs/fspath.js';

export interface RestoreOptions {
  target: string;
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
  filesRestored: number;
  filesSkipped: number;
  bytesWritten: number;
  errors: { path: string; message: string }[];
}

interface FileItem {
  snapPath: string;
  dest: FsPath;
  blobs: { id: Id; size: number; offset: number }[];
  size: number;
  remaining: number;
  failed: boolean;
}

interface Item {
  snapPath: string;
  dest: FsPath;
  node: Node;
  file?: FileItem;
  /** For the second and later names of a hardlinked file: the first one. */
  linkTo?: Item;
}

/** Gaps between needed blobs up to this size are read through rather than split into two reads. */
const MAX_GAP = 1024 * 1024;
const MAX_RANGE = 8 * 1024 * 1024;
/** Files per file-system batch sent to a worker. */
const BATCH = 512;

function plainSize(loc: BlobLocation): number {
  return loc.uncompressedLength ?? loc.length - CRYPTO_OVERHEAD;
}

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
 */
export async function restoreTree(repo: Repository, pool: WorkerPool, rootTree: Id, rootPath: string, opts: RestoreOptions): Promise<RestoreResult> {
  const target = path.resolve(opts.target);
  const owner = opts.owner ?? process.getuid?.() === 0;
  const result: RestoreResult = { filesRestored: 0, filesSkipped: 0, bytesWritten: 0, errors: [] };
  const fail = (p: string, message: string): void => {
    result.errors.push({ path: p, message });
    opts.onError?.(p, message);
  };
  const aborted = (): void => {
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'restore interrupted');
  };

  let fresh = true;
  try {
    const st = fs.statSync(target);
    if (!st.isDirectory()) throw new CairnError('BAD_INPUT', `restore target ${target} exists and is not a directory`);
    fresh = fs.readdirSync(target).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }

  // Walk the snapshot's trees; directories are kept only when they hold something selected.
  const items: Item[] = [];
  const firstLink = new Map<string, Item>();
  const walk = async (treeId: Id, snapDir: string, destDir: FsPath): Promise<boolean> => {
    aborted();
    const tree = await repo.loadTree(treeId);
    let any = false;
    for (const node of tree.nodes) {
      safeName(node, snapDir);
      const snapPath = snapDir === '/' ? `/${node.name}` : `${snapDir}/${node.name}`;
      const dest = joinPath(destDir, node.name, node.nameRaw);
      if (opts.exclude?.(snapPath)) continue;
      if (node.type === 'dir') {
        const idx = items.length;
        items.push({ snapPath, dest, node });
        const inside = node.subtree ? await walk(node.subtree, snapPath, dest) : false;
        if (!inside && opts.include && !opts.include(snapPath)) items.splice(idx, 1);
        else any = true;
        continue;
      }
      if (opts.include && !opts.include(snapPath)) continue;
      any = true;
      const item: Item = { snapPath, dest, node };
      const linkKey = node.type === 'file' && (node.links ?? 1) > 1 && node.inode ? `${node.device_id ?? 0}:${node.inode}` : null;
      const first = linkKey ? firstLink.get(linkKey) : undefined;
      if (first) item.linkTo = first;
      else if (node.type === 'file') {
        if (linkKey) firstLink.set(linkKey, item);
        const f: FileItem = { snapPath, dest, blobs: [], size: 0, remaining: 0, failed: false };
        // Arrays made at their size: grown by push, each would reserve room for 17 (a restore of
        // 200,000 small files held ~25 MiB more that way).
        let offset = 0;
        const content = node.content ?? [];
        const locs = content.map((id) => repo.index.lookup('data', id));
        const missing = locs.indexOf(undefined);
        if (missing >= 0) {
          f.failed = true;
          fail(snapPath, `data blob ${content[missing]} is missing from the index`);
        } else {
          f.blobs = content.map((id, i) => {
            const size = plainSize(locs[i]!);
            offset += size;
            return { id, size, offset: offset - size };
          });
        }
        f.size = offset;
        item.file = f;
      }
      items.push(item);
    }
    return any;
  };
  const { tree: start } = await findSubtree(repo, rootTree, rootPath);
  await walk(start, rootPath === '/' ? '/' : rootPath, target);

  const files = items.filter((i) => i.file && !i.file.failed).map((i) => i.file!);
  const progress = { filesDone: 0, bytesDone: 0, filesTotal: files.length, bytesTotal: files.reduce((s, f) => s + f.size, 0), errors: 0 };
  const report = (): void => {
    progress.errors = result.errors.length;
    opts.onProgress?.(progress);
  };

  fs.mkdirSync(target, { recursive: true });
  for (const it of items) if (it.node.type === 'dir') fs.mkdirSync(it.dest, { recursive: true });

  // A resumed restore: files that already hold the right content are left alone.
  let todo = files;
  if (!fresh) {
    todo = [];
    const checks = await mapLimit(chunks(files, BATCH), pool.size * 2, (batch) =>
      pool.fsBatch(batch.map((f): FsOp => ({ op: 'check', path: f.dest, size: f.size, blobs: f.blobs }))),
    );
    checks.flat().forEach((right, i) => {
      const f = files[i];
      if (right === true) {
        result.filesSkipped++;
        progress.filesDone++;
        progress.bytesDone += f.size;
      } else {
        // Replace rather than rewrite in place: the old file may be a hardlink whose other names must keep their content.
        fs.rmSync(f.dest, { recursive: true, force: true });
        todo.push(f);
      }
    });
  }

  // Files of one blob are created by the write of that blob; others are created first, at full size.
  const empty = todo.filter((f) => f.blobs.length === 0);
  const multi = todo.filter((f) => f.blobs.length > 1);
  const created = await mapLimit(chunks([...empty, ...multi], BATCH), pool.size * 2, (batch) =>
    pool.fsBatch(batch.map((f): FsOp => ({ op: 'create', path: f.dest, size: f.size }))),
  );
  created.flat().forEach((err, i) => {
    const f = [...empty, ...multi][i];
    if (typeof err === 'string') {
      f.failed = true;
      fail(f.snapPath, err);
    }
  });
  const emptyOk = empty.filter((f) => !f.failed).length;
  result.filesRestored += emptyOk;
  progress.filesDone += emptyOk;

  // Group the needed blobs by pack: every place each blob goes.
  const byPack = new Map<Id, Map<Id, { id: Id; loc: BlobLocation; dests: { file: FileItem; offset: number }[] }>>();
  for (const f of todo) {
    if (f.failed) continue;
    f.remaining = f.blobs.length;
    for (const b of f.blobs) {
      const loc = repo.index.lookup('data', b.id)!;
      let pack = byPack.get(loc.packId);
      if (!pack) byPack.set(loc.packId, (pack = new Map()));
      const e = pack.get(b.id);
      if (e) e.dests.push({ file: f, offset: b.offset });
      else pack.set(b.id, { id: b.id, loc, dests: [{ file: f, offset: b.offset }] });
    }
  }
  const markFailed = (file: FileItem, message: string): void => {
    if (file.failed) return;
    file.failed = true;
    fail(file.snapPath, message);
  };

  const ranges: { packId: Id; range: { id: Id; loc: BlobLocation; dests: { file: FileItem; offset: number }[] }[] }[] = [];
  for (const [packId, blobs] of byPack) {
    for (const range of splitRanges([...blobs.values()].sort((a, b) => a.loc.offset - b.loc.offset))) ranges.push({ packId, range });
  }
  // One range per worker plus one loading: enough to keep the workers busy, little in memory.
  await mapLimit(ranges, pool.size + 1, async ({ packId, range }) => {
    aborted();
    const start = range[0].loc.offset;
    const end = range[range.length - 1].loc.offset + range[range.length - 1].loc.length;
    let data: Buffer;
    const buf = pool.buffer(end - start);
    try {
      data = await loadRange(repo.backend, { type: 'data', name: packId }, start, end - start, buf);
    } catch (err) {
      pool.recycle(buf);
      for (const e of range) for (const d of e.dests) markFailed(d.file, `pack ${packId}: ${(err as Error).message}`);
      return;
    }
    if (data.buffer !== buf.buffer) pool.recycle(buf);
    const blobs: RestoreBlob[] = range.map((e) => ({
      id: e.id,
      offset: e.loc.offset - start,
      length: e.loc.length,
      uncompressedLength: e.loc.uncompressedLength,
      dests: e.dests.filter((d) => !d.file.failed).map((d) => ({ path: d.file.dest, offset: d.offset, create: d.file.blobs.length === 1 ? d.file.size : undefined })),
    }));
    const { errors, written } = await pool.restoreBlobs(data, blobs);
    result.bytesWritten += written;
    progress.bytesDone += written;
    range.forEach((e, i) => {
      for (const d of e.dests) {
        if (errors[i]) markFailed(d.file, `pack ${packId}: ${errors[i]}`);
        else if (--d.file.remaining === 0 && !d.file.failed) {
          result.filesRestored++;
          progress.filesDone++;
        }
      }
    });
    report();
  });

  // Damaged files are removed rather than left looking complete.
  for (const f of todo) if (f.failed) fs.rmSync(f.dest, { force: true });

  // Hardlinks, symlinks and special files.
  for (const it of items) {
    try {
      if (it.linkTo) {
        if (it.linkTo.file?.failed) continue;
        fs.rmSync(it.dest, { force: true });
        fs.linkSync(it.linkTo.dest, it.dest);
      } else if (it.node.type === 'symlink') {
        fs.rmSync(it.dest, { force: true });
        const target = it.node.linktarget_raw ? Buffer.from(it.node.linktarget_raw, 'base64') : (it.node.linktarget ?? '');
        fs.symlinkSync(target, it.dest);
      } else if (it.node.type !== 'file' && it.node.type !== 'dir') {
        if (typeof it.dest !== 'string') throw new CairnError('BAD_INPUT', 'special files whose path is not UTF-8 are not restored');
        fs.rmSync(it.dest, { force: true });
        await createSpecial(it.dest, it.node);
      }
    } catch (err) {
      fail(it.snapPath, (err as Error).message);
    }
  }

  // Metadata last: everything but folders in parallel batches, then folders deepest first.
  const meta = (list: Item[]): FsOp[] => list.map((it) => ({ op: 'meta', path: it.dest, node: it.node, owner }));
  const leaves = items.filter((it) => it.node.type !== 'dir' && it.node.type !== 'socket' && !it.file?.failed && !it.linkTo?.file?.failed);
  const dirs = items.filter((it) => it.node.type === 'dir').reverse();
  const metaErrors = async (list: Item[], batches: number): Promise<void> => {
    const res = await mapLimit(chunks(list, BATCH), batches, (b) => pool.fsBatch(meta(b)));
    res.flat().forEach((err, i) => {
      if (typeof err === 'string') fail(list[i].snapPath, `setting metadata: ${err}`);
    });
  };
  await metaErrors(leaves, pool.size * 2);
  await metaErrors(dirs, 1);

  if (opts.verify) {
    const ok = files.filter((f) => !f.failed);
    const res = await mapLimit(chunks(ok, BATCH), pool.size * 2, (b) => pool.fsBatch(b.map((f): FsOp => ({ op: 'check', path: f.dest, size: f.size, blobs: f.blobs }))));
    res.flat().forEach((right, i) => {
      if (right !== true) fail(ok[i].snapPath, 'verification after restore failed: content differs');
    });
  }
  report();
  return result;
}

function splitRanges<T extends { loc: BlobLocation }>(sorted: T[]): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let curStart = 0;
  let curEnd = 0;
  for (const e of sorted) {
    const end = e.loc.offset + e.loc.length;
    if (cur.length > 0 && (e.loc.offset - curEnd > MAX_GAP || end - curStart > MAX_RANGE)) {
      out.push(cur);
      cur = [];
    }
    if (cur.length === 0) curStart = e.loc.offset;
    cur.push(e);
    curEnd = Math.max(curEnd, end);
  }
  if (cur.length > 0) out.push(cur);
  return out;
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
