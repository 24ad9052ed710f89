import fs from 'node:fs/promises';
import path from 'node:path';
import { CairnError } from '../errors.js';
import { applyMetadata, createSpecial } from '../fs/apply.js';
import type { Node } from '../fs/node.js';
import type { Id } from '../repository/id.js';
import type { BlobLocation } from '../repository/master-index.js';
import type { Repository } from '../repository/repository.js';
import type { WorkerPool } from '../repository/worker-pool.js';
import { CRYPTO_OVERHEAD } from '../crypto/crypto.js';
import { Limiter } from '../util/limit.js';

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
  dest: string;
  node: Node;
  blobs: { id: Id; size: number; offset: number }[];
  size: number;
  remaining: number;
  created: boolean;
  failed: boolean;
  hardlinkTo?: FileItem;
}

interface Item {
  snapPath: string;
  dest: string;
  node: Node;
  file?: FileItem;
}

/** Gaps between needed blobs up to this size are read through rather than split into two reads. */
const MAX_GAP = 1024 * 1024;
const MAX_RANGE = 32 * 1024 * 1024;
const PACKS_IN_FLIGHT = 4;

function plainSize(loc: BlobLocation): number {
  return loc.uncompressedLength ?? loc.length - CRYPTO_OVERHEAD;
}

function safeName(name: string, where: string): void {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new CairnError('INTEGRITY', `refusing to restore a node named ${JSON.stringify(name)} in ${where}: it would escape the target`);
  }
}

/**
 * Restores a tree into a folder: plans which blobs each file needs, reads each pack once in offset
 * order, verifies every blob (in the worker pool) while writing, then sets metadata bottom-up.
 * Files already present with the right content are skipped, so an interrupted restore resumes.
 */
export async function restoreTree(repo: Repository, pool: WorkerPool, rootTree: Id, rootPath: string, opts: RestoreOptions): Promise<RestoreResult> {
  const target = path.resolve(opts.target);
  const owner = opts.owner ?? process.getuid?.() === 0;
  const result: RestoreResult = { filesRestored: 0, filesSkipped: 0, bytesWritten: 0, errors: [] };
  const fail = (p: string, message: string): void => {
    result.errors.push({ path: p, message });
    opts.onError?.(p, message);
  };

  try {
    const st = await fs.stat(target);
    if (!st.isDirectory()) throw new CairnError('BAD_INPUT', `restore target ${target} exists and is not a directory`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }

  const items: Item[] = [];
  const hardlinks = new Map<string, FileItem>();
  const selected = (p: string, isDir: boolean): boolean => {
    if (opts.exclude?.(p)) return false;
    if (!opts.include) return true;
    return isDir || opts.include(p);
  };

  // Walk the snapshot's trees; directories are kept only when they hold something selected.
  const walk = async (treeId: Id, snapDir: string, destDir: string): Promise<boolean> => {
    const tree = await repo.loadTree(treeId);
    let any = false;
    for (const node of tree.nodes) {
      safeName(node.name, snapDir);
      const snapPath = snapDir === '/' ? `/${node.name}` : `${snapDir}/${node.name}`;
      const dest = path.join(destDir, node.name);
      if (opts.exclude?.(snapPath)) continue;
      if (node.type === 'dir') {
        const idx = items.length;
        items.push({ snapPath, dest, node });
        const included = opts.include?.(snapPath) ?? true;
        const keep = node.subtree ? await walk(node.subtree, snapPath, dest) : false;
        if (!keep && !included) items.splice(idx, 1);
        else any = true;
        continue;
      }
      if (!selected(snapPath, false)) continue;
      any = true;
      const item: Item = { snapPath, dest, node };
      if (node.type === 'file') {
        const f: FileItem = { snapPath, dest, node, blobs: [], size: 0, remaining: 0, created: false, failed: false };
        const linkKey = (node.links ?? 1) > 1 && node.inode ? `${node.device_id ?? 0}:${node.inode}` : null;
        const first = linkKey ? hardlinks.get(linkKey) : undefined;
        if (first) f.hardlinkTo = first;
        else {
          if (linkKey) hardlinks.set(linkKey, f);
          let offset = 0;
          for (const id of node.content ?? []) {
            const loc = repo.index.lookup('data', id);
            if (!loc) {
              f.failed = true;
              fail(snapPath, `data blob ${id} is missing from the index`);
              break;
            }
            const size = plainSize(loc);
            f.blobs.push({ id, size, offset });
            offset += size;
          }
          f.size = offset;
        }
        item.file = f;
      }
      items.push(item);
    }
    return any;
  };

  const rootTreeId = await findSubtree(repo, rootTree, rootPath);
  await fs.mkdir(target, { recursive: true });
  await walk(rootTreeId.tree, rootPath === '/' ? '/' : rootPath, target);

  const files = items.filter((i) => i.file && !i.file.hardlinkTo && !i.file.failed).map((i) => i.file!);
  const bytesTotal = files.reduce((s, f) => s + f.size, 0);
  const progress = { filesDone: 0, bytesDone: 0, filesTotal: files.length, bytesTotal, errors: 0 };
  const report = (): void => {
    progress.errors = result.errors.length;
    opts.onProgress?.(progress);
  };

  for (const it of items) if (it.node.type === 'dir') await fs.mkdir(it.dest, { recursive: true });

  // Skip files that are already right (a resumed restore); create empty ones.
  const fsSlots = new Limiter(16);
  const todo: FileItem[] = [];
  await Promise.all(
    files.map((f) =>
      fsSlots.run(async () => {
        await fs.mkdir(path.dirname(f.dest), { recursive: true });
        const st = await fs.lstat(f.dest).catch(() => null);
        if (st && st.isFile() && st.size === f.size && (f.size === 0 || (await pool.verifyFile(f.dest, f.blobs)))) {
          result.filesSkipped++;
          progress.filesDone++;
          progress.bytesDone += f.size;
          return;
        }
        // Replace rather than truncate: the old file may be a hardlink that must keep its content.
        if (st) await fs.rm(f.dest, { recursive: true, force: true });
        if (f.blobs.length === 0) {
          await fs.writeFile(f.dest, '');
          f.created = true;
          result.filesRestored++;
          progress.filesDone++;
          return;
        }
        f.remaining = f.blobs.length;
        todo.push(f);
      }),
    ),
  );

  // Group the needed blobs by pack: every place each blob goes.
  const byPack = new Map<Id, Map<Id, { id: Id; loc: BlobLocation; dests: { file: FileItem; offset: number }[] }>>();
  for (const f of todo) {
    for (const b of f.blobs) {
      const loc = repo.index.lookup('data', b.id)!;
      let pack = byPack.get(loc.packId);
      if (!pack) byPack.set(loc.packId, (pack = new Map()));
      let e = pack.get(b.id);
      if (!e) pack.set(b.id, (e = { id: b.id, loc, dests: [] }));
      e.dests.push({ file: f, offset: b.offset });
    }
  }

  const zero = Buffer.alloc(8 * 1024 * 1024);
  const writeBlob = async (file: FileItem, offset: number, data: Buffer): Promise<void> => {
    if (file.failed) return;
    // Every file is created at its full size, so blocks of zeros can stay holes: sparse files restore sparse.
    const isZero = data.length <= zero.length && data.equals(zero.subarray(0, data.length));
    if (!file.created || !isZero) {
      const fh = await fs.open(file.dest, file.created ? 'r+' : 'w');
      try {
        if (!file.created) {
          file.created = true;
          await fh.truncate(file.size);
        }
        if (!isZero) {
          let done = 0;
          while (done < data.length) {
            const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
            done += bytesWritten;
          }
        }
      } finally {
        await fh.close();
      }
    }
    result.bytesWritten += data.length;
    progress.bytesDone += data.length;
    if (--file.remaining === 0) {
      result.filesRestored++;
      progress.filesDone++;
      report();
    }
  };

  const packSlots = new Limiter(PACKS_IN_FLIGHT);
  await Promise.all(
    [...byPack.entries()].map(([packId, blobs]) =>
      packSlots.run(async () => {
        if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'restore interrupted');
        const sorted = [...blobs.values()].sort((a, b) => a.loc.offset - b.loc.offset);
        for (const range of splitRanges(sorted)) {
          const start = range[0].loc.offset;
          const end = range[range.length - 1].loc.offset + range[range.length - 1].loc.length;
          let data: Buffer;
          try {
            data = await repo.backend.load({ type: 'data', name: packId }, start, end - start);
          } catch (err) {
            for (const e of range) for (const d of e.dests) markFailed(d.file, `pack ${packId}: ${(err as Error).message}`);
            continue;
          }
          const { plains, errors } = await pool.open(
            data,
            range.map((e) => ({ id: e.id, offset: e.loc.offset - start, length: e.loc.length, uncompressedLength: e.loc.uncompressedLength })),
          );
          for (let i = 0; i < range.length; i++) {
            const plain = plains[i];
            if (!plain) {
              for (const d of range[i].dests) markFailed(d.file, `pack ${packId}: ${errors[i]}`);
              continue;
            }
            for (const d of range[i].dests) await writeBlob(d.file, d.offset, plain);
          }
        }
      }),
    ),
  );

  function markFailed(file: FileItem, message: string): void {
    if (file.failed) return;
    file.failed = true;
    fail(file.snapPath, message);
  }

  // Damaged files are removed rather than left looking complete.
  for (const f of todo) if (f.failed) await fs.rm(f.dest, { force: true });

  // Hardlinks, symlinks and special files, then metadata bottom-up.
  for (const it of items) {
    const f = it.file;
    try {
      if (f?.hardlinkTo) {
        if (f.hardlinkTo.failed) continue;
        await fs.rm(it.dest, { force: true });
        await fs.link(f.hardlinkTo.dest, it.dest);
      } else if (it.node.type === 'symlink') {
        await fs.rm(it.dest, { force: true });
        await fs.symlink(it.node.linktarget ?? '', it.dest);
      } else if (it.node.type !== 'file' && it.node.type !== 'dir') {
        await fs.rm(it.dest, { force: true });
        await createSpecial(it.dest, it.node);
      }
    } catch (err) {
      fail(it.snapPath, (err as Error).message);
    }
  }
  const ordered = [...items].sort((a, b) => b.dest.length - a.dest.length);
  for (const it of ordered) {
    if (it.file?.failed || it.node.type === 'socket') continue;
    try {
      await applyMetadata(it.dest, it.node, { owner });
    } catch (err) {
      fail(it.snapPath, `setting metadata: ${(err as Error).message}`);
    }
  }

  if (opts.verify) {
    for (const f of files) {
      if (f.failed) continue;
      if (!(await pool.verifyFile(f.dest, f.blobs))) fail(f.snapPath, 'verification after restore failed: content differs');
    }
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
