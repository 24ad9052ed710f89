import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BigIntStats } from 'node:fs';
import { CairnError } from '../errors.js';
import { nameKey, nodeFromStat, nodeCompare, sameNode, utf8Compare, type EntryStat, type Node } from '../fs/node.js';
import { isUtf8 } from '../fs/goquote.js';
import { joinPath, showPath, type FsPath } from '../fs/fspath.js';
import { readXattrs } from '../fs/xattr.js';
import { listedEntry, lstatOrError, readNames, statTimeIs, type Listing } from './listing.js';
import { Scout } from './scout.js';
import { sourceInTaggedFolder, taggedFolderKeeps, type ExcludeLists } from './excludes.js';
import { formatTime } from '../fs/time.js';
import type { Id } from '../repository/id.js';
import { Limiter } from '../util/limit.js';
import type { Repository } from '../repository/repository.js';
import { PROGRAM_VERSION, currentUser, type Snapshot, type SnapshotSummary } from '../repository/snapshot.js';
import { encodeTree } from '../repository/tree.js';
import { SMALL_FILE, SourceError, type WorkerPool } from '../repository/worker-pool.js';
import type { SaveResult } from '../repository/worker-protocol.js';

export interface BackupOptions {
  /** Absolute, cleaned source paths. */
  paths: string[];
  tags?: string[];
  host?: string;
  excluded?: (absPath: string) => boolean;
  excludePatterns?: string[];
  /**
   * The rules `excluded` was built from (Excluder.lists): folders are then read ahead on a thread.
   * Its tag rules and size limit apply whether or not `excluded` is given.
   */
  excludeLists?: ExcludeLists;
  oneFileSystem?: boolean;
  /**
   * Folder reading ahead, started early by the caller with the same excludes, one-file-system
   * setting and paths (see Scout); the archiver closes it. Without it, the archiver starts its own.
   */
  scout?: Scout;
  parent?: Snapshot | null;
  /** Read every file even when the parent snapshot says it is unchanged. */
  force?: boolean;
  /** restic 0.17's --skip-if-unchanged: save no snapshot when the tree is the parent's. */
  skipIfUnchanged?: boolean;
  /**
   * restic's --ignore-inode and --ignore-ctime: a file is unchanged from its parent's node without
   * the inode or ctime agreeing. As restic, ignoreInode implies ignoreCtime (where inodes are not
   * stable, ctimes are not either).
   */
  ignoreInode?: boolean;
  ignoreCtime?: boolean;
  /** The snapshot's time (restic's --time), in nanoseconds since the epoch; default: when the backup started. */
  timeNs?: bigint;
  /** restic's --with-atime: store access times (otherwise a node's atime is its mtime, as restic stores it). */
  withAtime?: boolean;
  /**
   * Absolute paths known to have changed since the parent snapshot (created, modified, renamed or
   * deleted; a folder stands for everything below it), as a file watcher reports them. With a parent,
   * only these paths and the folders leading to them are looked at; every other entry is taken from
   * the parent snapshot as it is, without a stat. Without a parent the option is ignored.
   */
  changedPaths?: string[];
  signal?: AbortSignal;
  onProgress?: (p: BackupProgress) => void;
  /** A source item that could not be read; the backup goes on without it. */
  onError?: (path: string, err: Error) => void;
  /** Each file as it is done: new, modified (read again) or unchanged (taken from the parent), and the bytes it added. */
  onFile?: (path: string, action: 'new' | 'modified' | 'unchanged', added: number) => void;
}

export interface BackupProgress {
  filesDone: number;
  bytesDone: number;
  errors: number;
  current?: string;
}

export interface BackupResult {
  /** The snapshot saved; with `skipped`, the parent, which holds the same tree. */
  snapshotId: Id;
  /** No snapshot was saved: nothing changed since the parent (see skipIfUnchanged). */
  skipped?: boolean;
  snapshot: Snapshot;
  summary: SnapshotSummary;
  errors: { path: string; message: string }[];
}

/** Files in flight per worker: enough to hide a message round trip, few enough to keep memory flat. */
const FILES_PER_WORKER = 8;
/** Small files in flight per worker: they travel in batches (see SMALL_FILE), two batches each. */
const SMALL_FILES_PER_WORKER = 64;

/**
 * The part of the tree a changed-paths backup must look at. `all` covers a changed path and
 * everything below it; `children` lead towards changed paths further down.
 */
interface Scope {
  all: boolean;
  children: Map<string, Scope>;
}

/** Builds the scope tree of changed paths; null means everything is in scope. */
export function buildScope(changed: string[] | undefined): Scope | null {
  if (!changed) return null;
  const root: Scope = { all: false, children: new Map() };
  for (const p of changed) {
    let s = root;
    for (const part of path.resolve('/', p).split('/').filter(Boolean)) {
      if (s.all) break;
      let c = s.children.get(part);
      if (!c) {
        c = { all: false, children: new Map() };
        s.children.set(part, c);
      }
      s = c;
    }
    s.all = true;
    s.children.clear();
  }
  return root;
}

/** The scope of an entry named `name` inside a folder whose scope is `scope`; undefined when out of scope. */
function childScope(scope: Scope | null, name: string): Scope | null | undefined {
  if (scope === null || scope.all) return null;
  return scope.children.get(name);
}

/** The parent snapshot's tree for a folder, its nodes in stored order and by name. */
interface ParentTree {
  id?: Id;
  nodes?: Node[];
  byName: Map<string, Node>;
}

interface Target {
  name: string;
  children: Map<string, Target>;
  /** Set when this path itself was named on the command line. */
  source?: string;
}

/**
 * Marks a promise as handled now; its rejection still reaches whoever awaits it later. The walk
 * collects promises long before it awaits them, and an early failure must not crash the process.
 */
function guard<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * Whether the parent's node still holds this entry's extended attributes: same inode and ctime
 * (setting or removing an attribute moves ctime), so they need not be read again.
 */
function sameXattrs(old: Node | undefined, st: EntryStat): boolean {
  if (!old || old.inode !== Number(st.ino) || old.type !== (st.isDirectory() ? 'dir' : 'file')) return false;
  return statTimeIs(st, 'ctime', old.ctime);
}

/**
 * Walks the sources in order (so memory follows the depth of the tree, not its size), hands file
 * contents to the worker pool, reuses the parent snapshot's content for files whose size, times and
 * inode are unchanged, and writes trees bottom-up. Packs, then index files, then the snapshot.
 */
export class Archiver {
  readonly #repo: Repository;
  readonly #pool: WorkerPool;
  readonly #opts: BackupOptions;
  readonly #fileSlots: Limiter;
  readonly #smallFileSlots: Limiter;
  readonly #errors: { path: string; message: string }[] = [];
  readonly #summary: SnapshotSummary;
  #progress: BackupProgress = { filesDone: 0, bytesDone: 0, errors: 0 };
  #lastProgress = 0;
  #rootDevs = new Map<string, bigint>();
  /** With changed paths and a parent: what must be looked at (null: everything). */
  readonly #scope: Scope | null;
  /** Lists folders ahead of a whole walk (a changed-paths walk stats only what changed, here). */
  #scout: Scout | null = null;

  constructor(repo: Repository, pool: WorkerPool, opts: BackupOptions) {
    this.#repo = repo;
    this.#pool = pool;
    this.#opts = opts;
    this.#fileSlots = new Limiter(pool.size * FILES_PER_WORKER);
    this.#smallFileSlots = new Limiter(pool.size * SMALL_FILES_PER_WORKER);
    this.#scope = opts.parent && !opts.force ? buildScope(opts.changedPaths) : null;
    const now = formatTime(BigInt(Date.now()) * 1_000_000n);
    this.#summary = {
      backup_start: now,
      backup_end: now,
      files_new: 0,
      files_changed: 0,
      files_unmodified: 0,
      dirs_new: 0,
      dirs_changed: 0,
      dirs_unmodified: 0,
      data_blobs: 0,
      tree_blobs: 0,
      data_added: 0,
      data_added_packed: 0,
      total_files_processed: 0,
      total_bytes_processed: 0,
    };
  }

  async run(): Promise<BackupResult> {
    // The scout thread must skip what the walk skips; it knows excludes only as pattern lists.
    // A changed-paths walk stats only what changed, on this thread.
    if (this.#scope || (this.#opts.excluded && !this.#opts.excludeLists)) {
      await this.#opts.scout?.close();
      return this.#run();
    }
    this.#scout = this.#opts.scout ?? new Scout({ ...(this.#opts.excludeLists ?? { exclude: [], iexclude: [] }), oneFileSystem: !!this.#opts.oneFileSystem }, this.#opts.paths);
    try {
      return await this.#run();
    } finally {
      await this.#scout.close();
      this.#scout = null;
    }
  }

  async #run(): Promise<BackupResult> {
    const startNs = BigInt(Date.now()) * 1_000_000n;
    const root = this.#buildTargets();
    const parentRoot = this.#opts.parent ? this.#opts.parent.tree : undefined;
    // Backing up "/" makes the root folder itself the source: its tree is the snapshot's tree.
    const rootTree = root.source
      ? await this.#saveRoot(parentRoot)
      : await (await this.#saveTargetChildren(root, '/', parentRoot, this.#scope)).done;
    this.#checkAbort();
    await this.#pool.flush();
    await this.#repo.flush();
    this.#checkAbort();
    const user = currentUser();
    const endNs = BigInt(Date.now()) * 1_000_000n;
    this.#summary.backup_start = formatTime(startNs);
    this.#summary.backup_end = formatTime(endNs);
    const parent = this.#opts.parent;
    if (this.#opts.skipIfUnchanged && parent && parent.tree === rootTree && this.#errors.length === 0) {
      return { snapshotId: parent.id, skipped: true, snapshot: parent, summary: this.#summary, errors: this.#errors };
    }
    const snapshot = {
      time: formatTime(this.#opts.timeNs ?? startNs),
      parent: this.#opts.parent?.id,
      tree: rootTree,
      paths: this.#opts.paths,
      hostname: this.#opts.host ?? os.hostname(),
      username: user.username,
      uid: user.uid,
      gid: user.gid,
      excludes: this.#opts.excludePatterns,
      tags: this.#opts.tags,
      program_version: PROGRAM_VERSION,
      summary: this.#summary,
    };
    const snapshotId = await this.#repo.saveSnapshot(snapshot);
    return { snapshotId, snapshot: { ...snapshot, id: snapshotId }, summary: this.#summary, errors: this.#errors };
  }

  #checkAbort(): void {
    if (this.#opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'backup interrupted');
  }

  #buildTargets(): Target {
    const root: Target = { name: '', children: new Map() };
    const sorted = [...this.#opts.paths].sort((a, b) => a.length - b.length);
    for (const p of sorted) {
      const parts = p.split('/').filter(Boolean);
      let t = root;
      let covered = false;
      for (const part of parts) {
        if (t.source) {
          covered = true;
          break;
        }
        let c = t.children.get(part);
        if (!c) {
          c = { name: part, children: new Map() };
          t.children.set(part, c);
        }
        t = c;
      }
      if (!covered && !t.source) {
        t.source = p;
        t.children.clear();
      }
    }
    return root;
  }

  #error(at: FsPath, err: Error): void {
    const p = showPath(at);
    const message = err instanceof SourceError || err instanceof CairnError ? err.message : `${p}: ${err.message}`;
    this.#errors.push({ path: p, message });
    this.#progress.errors++;
    this.#opts.onError?.(p, err);
  }

  #report(current?: string): void {
    if (!this.#opts.onProgress) return;
    const now = Date.now();
    if (now - this.#lastProgress < 100) return;
    this.#lastProgress = now;
    this.#opts.onProgress({ ...this.#progress, current });
  }

  async #loadParentTree(id: Id | undefined): Promise<ParentTree> {
    const byName = new Map<string, Node>();
    if (!id) return { byName };
    try {
      const { nodes } = await this.#repo.loadTree(id);
      for (const n of nodes) byName.set(nameKey(n), n);
      return { id, nodes, byName };
    } catch {
      // A damaged parent only costs speed: everything below is read again.
      return { byName };
    }
  }

  async #saveRoot(parentTree: Id | undefined): Promise<Id> {
    const st = fsSync.lstatSync('/', { bigint: true });
    const id = await (await this.#saveDir('/', parentTree, st.dev, this.#scope)).done;
    if (id === null) throw new CairnError('BAD_INPUT', 'cannot read the root folder /');
    return id;
  }

  /** Saves the tree for a level of the virtual tree that leads to the sources. */
  async #saveTargetChildren(t: Target, dir: string, parentTree: Id | undefined, scope: Scope | null): Promise<{ done: Promise<Id> }> {
    const parent = await this.#loadParentTree(parentTree);
    const pending: Promise<Node | null>[] = [];
    for (const child of [...t.children.values()].sort((a, b) => utf8Compare(a.name, b.name))) {
      const abs = path.join(dir, child.name);
      const sub = childScope(scope, child.name);
      const old = parent.byName.get(child.name);
      if (sub === undefined && old) {
        pending.push(Promise.resolve(this.#reuse(old)));
        continue;
      }
      let st: BigIntStats;
      try {
        st = await fs.lstat(abs, { bigint: true });
      } catch (err) {
        throw new CairnError('BAD_INPUT', `cannot back up ${abs}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
      }
      if (child.source) {
        if (this.#tooLarge(!st.isDirectory(), st.size) || sourceInTaggedFolder(abs, this.#opts.excludeLists?.tags ?? [])) continue;
        this.#rootDevs.set(abs, st.dev);
        pending.push(guard((await this.#saveEntry(abs, child.name, undefined, st, old, st.dev, sub ?? null)).node));
      } else {
        if (!st.isDirectory()) throw new CairnError('BAD_INPUT', `cannot back up below ${abs}: not a directory`);
        const node = nodeFromStat(child.name, st, undefined, this.#opts.withAtime);
        const xa = sameXattrs(old, st) ? old?.extended_attributes : readXattrs(abs);
        if (xa) node.extended_attributes = xa;
        const saved = await this.#saveTargetChildren(child, abs, old?.type === 'dir' ? old.subtree : undefined, sub ?? null);
        pending.push(guard(saved.done.then((id) => ({ ...node, subtree: id }))));
      }
    }
    return { done: guard(this.#finishTree(pending, parent)) };
  }

  async #finishTree(pending: Promise<Node | null>[], parent: ParentTree): Promise<Id> {
    const nodes = (await Promise.all(pending)).filter((n): n is Node => n !== null);
    nodes.sort(nodeCompare);
    // Nothing changed in this folder: its tree is the parent's, already stored, so it is neither
    // encoded nor hashed again.
    const before = parent.nodes;
    if (parent.id && before && before.length === nodes.length && nodes.every((n, i) => sameNode(n, before[i]))) return parent.id;
    const { id, added } = await this.#repo.saveBlob('tree', encodeTree(nodes));
    if (added) this.#summary.tree_blobs++;
    return id;
  }

  /** Resolves once the entry is dispatched, with a promise for its node (null when it is left out). */
  async #saveEntry(abs: FsPath, name: string, nameRaw: Buffer | undefined, st: EntryStat, old: Node | undefined, rootDev: bigint, scope: Scope | null): Promise<{ node: Promise<Node | null> }> {
    this.#checkAbort();
    const named = (n: Node): Node => {
      if (nameRaw) n.nameRaw = nameRaw;
      if (n.type === 'file' || n.type === 'dir') {
        const xa = sameXattrs(old, st) ? old?.extended_attributes : readXattrs(abs);
        if (xa) n.extended_attributes = xa;
      }
      return n;
    };
    if (st.isDirectory()) {
      const node = named(nodeFromStat(name, st, undefined, this.#opts.withAtime));
      if (this.#opts.oneFileSystem && st.dev !== rootDev) {
        // A mount point is kept as an empty directory, as restic does, without crossing into it.
        const { id } = await this.#repo.saveBlob('tree', encodeTree([]));
        return { node: Promise.resolve({ ...node, subtree: id }) };
      }
      const sub = await this.#saveDir(abs, old?.type === 'dir' ? old.subtree : undefined, rootDev, scope);
      return { node: guard(sub.done.then((id) => {
        if (id === null) return null;
        if (!old || old.type !== 'dir') this.#summary.dirs_new++;
        else if (old.subtree === id) this.#summary.dirs_unmodified++;
        else this.#summary.dirs_changed++;
        return { ...node, subtree: id };
      })) };
    }
    if (st.isSymbolicLink()) {
      let target: Buffer;
      try {
        target = fsSync.readlinkSync(abs, { encoding: 'buffer' });
      } catch (err) {
        this.#error(abs, err as Error);
        return { node: Promise.resolve(null) };
      }
      const node = named(nodeFromStat(name, st, target.toString('utf8'), this.#opts.withAtime));
      // A target that is not UTF-8 is kept exactly in linktarget_raw, as restic 0.17 does.
      if (!isUtf8(target)) node.linktarget_raw = target.toString('base64');
      return { node: Promise.resolve(node) };
    }
    if (st.isFile()) {
      this.#summary.total_files_processed++;
      if (old && !this.#opts.force && this.#unchanged(old, st)) {
        this.#summary.files_unmodified++;
        this.#opts.onFile?.(showPath(abs), 'unchanged', 0);
        this.#summary.total_bytes_processed += Number(st.size);
        this.#progress.filesDone++;
        this.#progress.bytesDone += Number(st.size);
        this.#report(showPath(abs));
        // With the inode or ctime left out of the comparison, anything but the content may have
        // changed: the node is made afresh and takes the parent's content.
        if (this.#opts.ignoreInode || this.#opts.ignoreCtime) return { node: Promise.resolve({ ...named(nodeFromStat(name, st, undefined, this.#opts.withAtime)), content: old.content, size: old.size }) };
        // Same size, mtime, ctime and inode: mode, owner and links are unchanged too (they move
        // ctime), so only the access time and the device number may differ from the parent's node.
        const deviceId = Number(st.dev);
        // Without --with-atime the atime is the mtime, which is the parent's here.
        const atimeSame = this.#opts.withAtime ? statTimeIs(st, 'atime', old.atime) : old.atime === old.mtime;
        if (atimeSame && old.device_id === deviceId) return { node: Promise.resolve(old) };
        return { node: Promise.resolve({ ...old, atime: this.#opts.withAtime ? formatTime(st.atimeNs) : old.mtime, device_id: deviceId }) };
      }
    }
    const node = named(nodeFromStat(name, st, undefined, this.#opts.withAtime));
    if (!st.isFile()) return { node: Promise.resolve(node) };
    if (st.size === 0n) {
      this.#countFile(old, 0);
      this.#opts.onFile?.(showPath(abs), old ? 'modified' : 'new', 0);
      return { node: Promise.resolve({ ...node, content: [] }) };
    }
    const small = st.size <= BigInt(SMALL_FILE);
    const slots = small ? this.#smallFileSlots : this.#fileSlots;
    await slots.acquire();
    const job = (small ? this.#pool.saveSmallFile(abs, Number(st.size)) : this.#pool.saveFile(abs))
      .then(
        (r: SaveResult) => {
          this.#countFile(old, r.size);
          this.#opts.onFile?.(showPath(abs), old ? 'modified' : 'new', r.bytesNew);
          this.#summary.data_blobs += r.blobsNew;
          this.#summary.data_added += r.bytesNew;
          this.#summary.data_added_packed += r.bytesPacked;
          this.#report(showPath(abs));
          return { ...node, size: r.size, content: r.content } as Node;
        },
        (err: Error) => {
          if (!(err instanceof SourceError)) throw err;
          this.#error(abs, err);
          return null;
        },
      )
      .finally(() => {
        slots.release();
        if (this.#repo.indexDue) void this.#repo.writeIndex().catch(() => undefined);
      });
    return { node: guard(job) };
  }

  /** An entry outside the changed paths, taken from the parent snapshot as it is. */
  #reuse(old: Node): Node {
    if (old.type === 'dir') {
      this.#summary.dirs_unmodified++;
    } else if (old.type === 'file') {
      this.#summary.files_unmodified++;
      this.#summary.total_files_processed++;
      this.#summary.total_bytes_processed += old.size ?? 0;
      this.#progress.filesDone++;
      this.#progress.bytesDone += old.size ?? 0;
    }
    return old;
  }

  #countFile(old: Node | undefined, size: number): void {
    if (old) this.#summary.files_changed++;
    else this.#summary.files_new++;
    this.#summary.total_bytes_processed += size;
    this.#progress.filesDone++;
    this.#progress.bytesDone += size;
  }

  #unchanged(old: Node, st: EntryStat): boolean {
    if (old.type !== 'file' || !old.content) return false;
    if (old.size !== Number(st.size) || (!this.#opts.ignoreInode && old.inode !== Number(st.ino))) return false;
    const ignoreCtime = this.#opts.ignoreCtime || this.#opts.ignoreInode;
    if (!statTimeIs(st, 'mtime', old.mtime) || (!ignoreCtime && !statTimeIs(st, 'ctime', old.ctime))) return false;
    for (const id of old.content) if (!this.#repo.hasBlob('data', id)) return false;
    return true;
  }

  /** The names a tag rule keeps of a folder's entries (see taggedFolderKeeps), or null: all stay. */
  #tagged(dir: FsPath, names: readonly string[]): Set<string> | null {
    const tags = this.#opts.excludeLists?.tags;
    return tags && tags.length > 0 ? taggedFolderKeeps(dir, names, tags) : null;
  }

  /** Whether --exclude-larger-than leaves this entry out: anything but a folder, larger than the limit. */
  #tooLarge(notDir: boolean, size: bigint | number): boolean {
    const limit = this.#opts.excludeLists?.largerThan;
    return limit !== undefined && notDir && Number(size) > limit;
  }

  /** Walks one directory; resolves once every entry is dispatched, with a promise for the tree id. */
  async #saveDir(dir: FsPath, parentTree: Id | undefined, rootDev: bigint, scope: Scope | null): Promise<{ done: Promise<Id | null> }> {
    type Entry = { name: string; nameRaw?: Buffer; path: FsPath; stat: EntryStat | Error | undefined };
    const entries: Entry[] = [];
    const excluded = this.#opts.excluded;
    const parentP = this.#loadParentTree(parentTree);
    let scopes: (Scope | null | undefined)[];
    if (this.#scout) {
      // A whole walk: the scout thread has read this folder, and reads the folders below it next.
      let listing: Listing;
      try {
        listing = await this.#scout.list(dir, rootDev);
      } catch (err) {
        this.#error(dir, err as Error);
        return { done: Promise.resolve(null) };
      }
      const keeps = this.#tagged(dir, listing.names);
      for (let i = 0; i < listing.names.length; i++) {
        if (keeps && (listing.raws?.[i] || !keeps.has(listing.names[i]))) continue;
        const { name, nameRaw, stat } = listedEntry(listing, i);
        const p = joinPath(dir, name, nameRaw);
        if (excluded?.(showPath(p))) continue;
        entries.push({ name, nameRaw, path: p, stat });
      }
      scopes = entries.map(() => null);
    } else {
      // Changed paths only: synchronous readdir and lstat, and no stat at all out of scope, where
      // the parent's node stands.
      let names: { name: string; nameRaw?: Buffer }[];
      try {
        names = readNames(dir);
      } catch (err) {
        this.#error(dir, err as Error);
        return { done: Promise.resolve(null) };
      }
      const keeps = this.#tagged(dir, names.map((n) => n.name));
      for (const { name, nameRaw } of names) {
        if (keeps && (nameRaw || !keeps.has(name))) continue;
        const p = joinPath(dir, name, nameRaw);
        if (excluded && excluded(showPath(p))) continue;
        entries.push({ name, nameRaw, path: p, stat: undefined });
      }
      scopes = entries.map((e) => childScope(scope, e.name));
      entries.forEach((e, i) => {
        if (scopes[i] !== undefined) e.stat = lstatOrError(e.path);
      });
    }
    const parent = await parentP;
    const pending: Promise<Node | null>[] = [];
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      const old = parent.byName.get(nameKey(e));
      let st = e.stat;
      if (st === undefined) {
        if (old) {
          if (!this.#tooLarge(old.type !== 'dir', old.size ?? 0)) pending.push(Promise.resolve(this.#reuse(old)));
          continue;
        }
        // Not reported as changed, yet not in the parent either: look at it after all.
        st = lstatOrError(e.path);
      }
      if (st instanceof Error) {
        this.#error(e.path, st);
        continue;
      }
      if (this.#tooLarge(!st.isDirectory(), st.size)) continue;
      pending.push((await this.#saveEntry(e.path, e.name, e.nameRaw, st, old, rootDev, scopes[i] ?? null)).node);
    }
    return { done: guard(this.#finishTree(pending, parent)) };
  }
}
