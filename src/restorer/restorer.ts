import fs from 'node:fs';
import path from 'node:path';
import { CairnError } from '../errors.js';
import { loadRange } from '../backend/backend.js';
import { createSpecial, nodeMeta, type NodeMeta } from '../fs/apply.js';
import type { Node } from '../fs/node.js';
import type { Id } from '../repository/id.js';
import type { BlobLocation } from '../repository/master-index.js';
import type { Repository } from '../repository/repository.js';
import type { WorkerPool } from '../repository/worker-pool.js';
import type { FsOp, RestoreBlob } from '../repository/worker-protocol.js';
import { CRYPTO_OVERHEAD } from '../crypto/crypto.js';
import { mapLimit } from '../util/limit.js';
import { joinPath, showPath, type FsPath } from '../fs/fspath.js';

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

/** A file to restore; its path inside the snapshot, for messages, comes from `dest` (see snapPathOf). */
interface FileItem {
  dest: FsPath;
  /** Its blobs are the BlobRefs from `firstRef`, `blobs` of them, in order (the content list's ids are not kept). */
  firstRef: number;
  blobs: number;
  size: number;
  remaining: number;
  failed: boolean;
}

interface Item {
  dest: FsPath;
  /**
   * Symlinks and special files keep their node; files and folders only what setting their
   * metadata needs (a file's node with its content list and times is most of a plan's memory).
   */
  node: Node | NodeMeta;
  file?: FileItem;
  /** For the second and later names of a hardlinked file: the first one. */
  linkTo?: Item;
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
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }

  // Walk the snapshot's trees; directories are kept only when they hold something selected.
  const items: Item[] = [];
  // Every file's blobs, in the order the walk meets them (see BlobRefs).
  const fileList: FileItem[] = [];
  const refs = new BlobRefs();
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
        items.push({ dest, node: nodeMeta(node) });
        const inside = node.subtree ? await walk(node.subtree, snapPath, dest) : false;
        if (!inside && opts.include && !opts.include(snapPath)) items.splice(idx, 1);
        else any = true;
        continue;
      }
      if (opts.include && !opts.include(snapPath)) continue;
      any = true;
      const item: Item = { dest, node: node.type === 'file' ? nodeMeta(node) : node };
      const linkKey = node.type === 'file' && (node.links ?? 1) > 1 && node.inode ? `${node.device_id ?? 0}:${node.inode}` : null;
      const first = linkKey ? firstLink.get(linkKey) : undefined;
      if (first) item.linkTo = first;
      else if (node.type === 'file') {
        if (linkKey) firstLink.set(linkKey, item);
        const content = node.content ?? [];
        const f: FileItem = { dest, firstRef: refs.count, blobs: content.length, size: 0, remaining: content.length, failed: false };
        const n = fileList.push(f) - 1;
        for (const id of content) {
          const loc = repo.index.lookup('data', id);
          if (!loc) {
            f.failed = true;
            fail(snapPath, `data blob ${id} is missing from the index`);
            break;
          }
          refs.add(n, id, f.size, loc);
          f.size += refs.plainSize(refs.count - 1);
        }
        item.file = f;
      }
      items.push(item);
    }
    return any;
  };
  const { tree: start } = await findSubtree(repo, rootTree, rootPath);
  await walk(start, rootPath === '/' ? '/' : rootPath, target);

  const files = fileList.filter((f) => !f.failed);
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
      pool.fsBatch(batch.map((f) => checkOp(refs, f))),
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
  const empty = todo.filter((f) => f.blobs === 0);
  const multi = todo.filter((f) => f.blobs > 1);
  const created = await mapLimit(chunks([...empty, ...multi], BATCH), pool.size * 2, (batch) =>
    pool.fsBatch(batch.map((f): FsOp => ({ op: 'create', path: f.dest, size: f.size }))),
  );
  created.flat().forEach((err, i) => {
    const f = [...empty, ...multi][i];
    if (typeof err === 'string') {
      f.failed = true;
      fail(snapPathOf(f.dest), err);
    }
  });
  const emptyOk = empty.filter((f) => !f.failed).length;
  result.filesRestored += emptyOk;
  progress.filesDone += emptyOk;

  const markFailed = (file: FileItem, message: string): void => {
    if (file.failed) return;
    file.failed = true;
    fail(snapPathOf(file.dest), message);
  };
  // Every place each needed blob goes, ordered by pack and offset, then cut into ranges to read.
  const wanted = new Set(todo);
  const order = refs.order((n) => wanted.has(fileList[n]) && !fileList[n].failed);
  // One range per worker plus one loading: enough to keep the workers busy, little in memory.
  await mapLimit(refs.ranges(order), pool.size + 1, async ({ packId, from, to }) => {
    aborted();
    const start = refs.offset[order[from]];
    const last = order[to - 1];
    const end = refs.offset[last] + refs.length[last];
    // Each blob once, with the references that need it (refs of one blob follow each other).
    const groups: number[] = [];
    for (let j = from; j < to; j++) if (j === from || !refs.sameBlob(order[j], order[j - 1])) groups.push(j);
    groups.push(to);
    const eachDest = (g: number, fn: (file: FileItem, r: number) => void): void => {
      for (let j = groups[g]; j < groups[g + 1]; j++) fn(fileList[refs.file[order[j]]], order[j]);
    };
    let data: Buffer;
    const buf = pool.buffer(end - start);
    try {
      data = await loadRange(repo.backend, { type: 'data', name: packId }, start, end - start, buf);
    } catch (err) {
      pool.recycle(buf);
      for (let g = 0; g + 1 < groups.length; g++) eachDest(g, (file) => markFailed(file, `pack ${packId}: ${(err as Error).message}`));
      return;
    }
    if (data.buffer !== buf.buffer) pool.recycle(buf);
    const blobs: RestoreBlob[] = [];
    for (let g = 0; g + 1 < groups.length; g++) {
      const r = order[groups[g]];
      const dests: RestoreBlob['dests'] = [];
      eachDest(g, (file, d) => {
        if (!file.failed) dests.push({ path: file.dest, offset: refs.fileOffset[d], create: file.blobs === 1 ? file.size : undefined });
      });
      blobs.push({ id: refs.id(r), offset: refs.offset[r] - start, length: refs.length[r], uncompressedLength: refs.uncompressedLength(r), dests });
    }
    const { errors, written } = await pool.restoreBlobs(data, blobs);
    result.bytesWritten += written;
    progress.bytesDone += written;
    errors.forEach((error, g) => {
      eachDest(g, (file) => {
        if (error) markFailed(file, `pack ${packId}: ${error}`);
        else if (--file.remaining === 0 && !file.failed) {
          result.filesRestored++;
          progress.filesDone++;
        }
      });
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
        const node = it.node as Node;
        fs.rmSync(it.dest, { force: true });
        const target = node.linktarget_raw ? Buffer.from(node.linktarget_raw, 'base64') : (node.linktarget ?? '');
        fs.symlinkSync(target, it.dest);
      } else if (it.node.type !== 'file' && it.node.type !== 'dir') {
        if (typeof it.dest !== 'string') throw new CairnError('BAD_INPUT', 'special files whose path is not UTF-8 are not restored');
        fs.rmSync(it.dest, { force: true });
        await createSpecial(it.dest, it.node as Node);
      }
    } catch (err) {
      fail(snapPathOf(it.dest), (err as Error).message);
    }
  }

  // Metadata last: everything but folders in parallel batches, then folders deepest first.
  const meta = (list: Item[]): FsOp[] => list.map((it) => ({ op: 'meta', path: it.dest, node: it.node, owner }));
  const leaves = items.filter((it) => it.node.type !== 'dir' && it.node.type !== 'socket' && !it.file?.failed && !it.linkTo?.file?.failed);
  const dirs = items.filter((it) => it.node.type === 'dir').reverse();
  const metaErrors = async (list: Item[], batches: number): Promise<void> => {
    const res = await mapLimit(chunks(list, BATCH), batches, (b) => pool.fsBatch(meta(b)));
    res.flat().forEach((err, i) => {
      if (typeof err === 'string') fail(snapPathOf(list[i].dest), `setting metadata: ${err}`);
    });
  };
  await metaErrors(leaves, pool.size * 2);
  await metaErrors(dirs, 1);

  if (opts.verify) {
    const ok = files.filter((f) => !f.failed);
    const res = await mapLimit(chunks(ok, BATCH), pool.size * 2, (b) => pool.fsBatch(b.map((f) => checkOp(refs, f))));
    res.flat().forEach((right, i) => {
      if (right !== true) fail(snapPathOf(ok[i].dest), 'verification after restore failed: content differs');
    });
  }
  report();
  return result;
}

/** The check a resumed or verified restore makes of a file: its size and its blobs' ids and sizes. */
function checkOp(refs: BlobRefs, f: FileItem): FsOp {
  const blobs: { id: Id; size: number }[] = [];
  for (let r = f.firstRef; r < f.firstRef + f.blobs; r++) blobs.push({ id: refs.id(r), size: refs.plainSize(r) });
  return { op: 'check', path: f.dest, size: f.size, blobs };
}

/**
 * Every place a blob goes: the file (its number in the restore's list), the blob's id, where in
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
    const grow = <T extends Uint32Array | Float64Array>(a: T): T => {
      const b = new (a.constructor as new (n: number) => T)(a.length * 2);
      b.set(a);
      return b;
    };
    this.file = grow(this.file);
    const ids = Buffer.alloc(this.#ids.length * 2);
    this.#ids.copy(ids);
    this.#ids = ids;
    this.fileOffset = grow(this.fileOffset);
    this.pack = grow(this.pack);
    this.offset = grow(this.offset);
    this.length = grow(this.length);
    this.#ulen = grow(this.#ulen);
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
