import { CairnError } from '../errors.js';
import { unixPermFromGoMode } from '../fs/filemode.js';
import type { Node } from '../fs/node.js';
import { parseTimeOr } from '../fs/time.js';
import { findSnapshots, type SnapshotFilter } from '../repository/find.js';
import { shortId, type Id } from '../repository/id.js';
import { plaintextLength, type BlobLocation } from '../repository/master-index.js';
import type { Repository } from '../repository/repository.js';
import type { Snapshot } from '../repository/snapshot.js';

/**
 * A repository's snapshots as a read-only file tree, laid out as restic's mount lays it out:
 * `ids/<short id>/`, `snapshots/<time>/`, `hosts/<host>/<time>/` and `tags/<tag>/<time>/`, each
 * folder of snapshots with a `latest` symlink to its newest. Below a snapshot's folder are the
 * files and folders it holds, with their modes, owners, times, sizes, link targets and extended
 * attributes. This module knows nothing of FUSE (see mount.ts): it answers in paths and entries.
 */

/** What a path names: a folder made here, a symlink made here, or a node of a snapshot. */
export type Entry =
  | { kind: 'virtual-dir'; children: () => Promise<Map<string, Entry>>; time: bigint }
  | { kind: 'virtual-link'; target: string; time: bigint }
  | { kind: 'node'; node: Node };

/** A file's blobs with where each begins, for reads at any offset. */
export interface FileLayout {
  ids: Id[];
  /** starts[i] is blob i's offset in the file; starts[ids.length] is the file's size. */
  starts: number[];
}

export interface SnapshotFsOptions {
  filter: SnapshotFilter;
  /** How long a listing of the snapshots stands before the next look at the repository, in ms. */
  refreshMs?: number;
  /** Bytes of file blobs kept after reads (a read of 128 KiB touches the same blob eight times). */
  blobCacheBytes?: number;
  /** Told when a look at the repository fails (the mount goes on with what it had). */
  onWarning?: (message: string) => void;
}

/** restic's default snapshot folder name, Go's "2006-01-02T15:04:05Z07:00": seconds, and the zone the snapshot was taken in. */
export function snapshotDirName(time: string): string {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(time);
  return m ? m[1] + (m[2] === '+00:00' ? 'Z' : m[2]) : time.replace(/\//g, '_');
}

/** How much of a pack is read at once for a small blob (see SnapshotFs's #sealed). */
const WINDOW = 1024 * 1024;

/** A snapshot's time in nanoseconds (0 for a time that does not parse: the snapshot is still shown). */
function timeOf(s: Snapshot): bigint {
  return parseTimeOr(s.time, 0n);
}

/** A name safe as one path part: no slash, not empty, not "." or "..". */
function safeName(name: string): string {
  const s = name.replace(/\//g, '_');
  return s === '' || s === '.' || s === '..' ? `_${s}` : s;
}

/** A small cache that forgets the least recently used entries past a budget. */
class Lru<V> {
  readonly #map = new Map<string, { v: V; size: number }>();
  #total = 0;

  constructor(readonly budget: number) {}

  get(k: string): V | undefined {
    const e = this.#map.get(k);
    if (!e) return undefined;
    this.#map.delete(k);
    this.#map.set(k, e);
    return e.v;
  }

  set(k: string, v: V, size: number): void {
    const old = this.#map.get(k);
    if (old) {
      this.#total -= old.size;
      this.#map.delete(k);
    }
    this.#map.set(k, { v, size });
    this.#total += size;
    for (const [key, e] of this.#map) {
      if (this.#total <= this.budget || this.#map.size === 1) break;
      this.#map.delete(key);
      this.#total -= e.size;
    }
  }
}

export class SnapshotFs {
  readonly #repo: Repository;
  readonly #opts: SnapshotFsOptions;
  #snapshots: Snapshot[] = [];
  #listedAt = -Infinity;
  #looking: Promise<void> | null = null;
  /** Entries by path, as lately looked up; emptied when the snapshots change. */
  #paths = new Lru<Entry>(100_000);
  /** The index files the loaded index was read from, sorted and joined. */
  #indexKey = '';
  #root: Map<string, Entry> | null = null;
  readonly #trees = new Lru<Map<string, Entry>>(4096);
  readonly #treeLoads = new Map<Id, Promise<Map<string, Entry>>>();
  readonly #blobs: Lru<Buffer>;
  readonly #blobLoads = new Map<Id, Promise<Buffer>>();
  /** Settles once the index holds every snapshot's blobs (it is read again when new snapshots appear). */
  #indexReady: Promise<void> = Promise.resolve();
  readonly #layouts = new WeakMap<Node, FileLayout>();
  /** Windows of packs read for small blobs (see #sealed), by pack, and those on their way. */
  readonly #windows = new Lru<{ from: number; bytes: Buffer }>(8 * WINDOW);
  readonly #windowLoads = new Map<Id, Promise<{ from: number; bytes: Buffer }>>();
  readonly #packSizes = new Lru<number>(4096);

  constructor(repo: Repository, opts: SnapshotFsOptions) {
    this.#repo = repo;
    this.#opts = opts;
    this.#blobs = new Lru(opts.blobCacheBytes ?? 64 * 1024 * 1024);
  }

  /** Loads the index and lists the snapshots now: the mount starts with them. */
  async start(): Promise<void> {
    // Listed before the index loads: index files written meanwhile are read at the first look.
    this.#indexKey = (await this.#repo.listIds('index')).sort().join(',');
    await this.#repo.loadIndex();
    await this.#look();
  }

  /** The snapshots the mount shows, oldest first. */
  get snapshots(): readonly Snapshot[] {
    return this.#snapshots;
  }

  /**
   * Looks at the repository again when the last look is older than refreshMs. A look that fails
   * (a remote that is down) keeps what the mount shows, says why, and is tried again later.
   */
  async #refresh(): Promise<void> {
    if (performance.now() - this.#listedAt < (this.#opts.refreshMs ?? 5000)) return;
    this.#looking ??= this.#look()
      .catch((err: unknown) => {
        this.#listedAt = performance.now();
        this.#opts.onWarning?.(`looking for new snapshots failed, showing those seen before: ${(err as Error).message}`);
      })
      .finally(() => (this.#looking = null));
    await this.#looking;
  }

  /** Lists snapshots and index files; reads the index again when its files changed (a backup or a prune since). */
  async #look(): Promise<void> {
    const [snaps, indexIds] = await Promise.all([findSnapshots(this.#repo, [], this.#opts.filter), this.#repo.listIds('index')]);
    const indexKey = indexIds.sort().join(',');
    if (indexKey !== this.#indexKey) {
      // Reads wait for it (from the cache, then the new files); a failed reload fails this look,
      // and the next one tries again.
      const reload = this.#indexReady.then(async () => {
        this.#repo.forgetIndex();
        await this.#repo.loadIndex();
      });
      this.#indexReady = reload.catch(() => undefined);
      await reload;
      this.#indexKey = indexKey;
    }
    this.#listedAt = performance.now();
    const known = new Set(this.#snapshots.map((s) => s.id));
    if (this.#root && snaps.length === known.size && snaps.every((s) => known.has(s.id))) return;
    // By instant (times carry their zones, so their text does not sort), then by id.
    const at = new Map(snaps.map((s) => [s.id, timeOf(s)]));
    this.#snapshots = [...snaps].sort((a, b) => {
      const d = at.get(a.id)! - at.get(b.id)!;
      return d < 0n ? -1 : d > 0n ? 1 : a.id < b.id ? -1 : 1;
    });
    this.#root = this.#buildRoot();
    this.#paths = new Lru<Entry>(100_000);
  }

  #buildRoot(): Map<string, Entry> {
    const snaps = this.#snapshots;
    const newest = snaps.length > 0 ? timeOf(snaps[snaps.length - 1]) : 0n;
    const dir = (children: Map<string, Entry>, time = newest): Entry => ({ kind: 'virtual-dir', children: async () => children, time });
    const snapshotDir = (s: Snapshot): Entry => ({ kind: 'virtual-dir', children: () => this.#treeEntries(s.tree), time: timeOf(s) });
    /** Snapshots by time, names made unique, with `latest` pointing at the newest. */
    const byTime = (list: Snapshot[]): Map<string, Entry> => {
      const m = new Map<string, Entry>();
      let last = '';
      for (const s of list) {
        const base = safeName(snapshotDirName(s.time));
        let name = base;
        for (let i = 1; m.has(name) || name === 'latest'; i++) name = `${base}-${i}`;
        m.set(name, snapshotDir(s));
        last = name;
      }
      if (last) m.set('latest', { kind: 'virtual-link', target: last, time: timeOf(list[list.length - 1]) });
      return m;
    };
    const grouped = (key: (s: Snapshot) => string[]): Map<string, Entry> => {
      const groups = new Map<string, Snapshot[]>();
      for (const s of snaps) {
        for (const k of key(s)) {
          const list = groups.get(safeName(k));
          if (list) list.push(s);
          else groups.set(safeName(k), [s]);
        }
      }
      return new Map([...groups].map(([k, list]) => [k, dir(byTime(list), timeOf(list[list.length - 1]))]));
    };
    return new Map<string, Entry>([
      ['ids', dir(new Map(snaps.map((s) => [shortId(s.id), snapshotDir(s)])))],
      ['snapshots', dir(byTime(snaps))],
      ['hosts', dir(grouped((s) => (s.hostname ? [s.hostname] : [])))],
      ['tags', dir(grouped((s) => [...new Set(s.tags ?? [])]))],
    ]);
  }

  /** A tree's nodes by name, loaded once and kept while used (a failed load is not kept). */
  async #treeEntries(id: Id): Promise<Map<string, Entry>> {
    const hit = this.#trees.get(id);
    if (hit) return hit;
    let p = this.#treeLoads.get(id);
    if (!p) {
      p = (async () => {
        await this.#indexReady;
        const t = await this.#repo.loadTree(id);
        const m = new Map(t.nodes.map((n) => [n.name, { kind: 'node', node: n } satisfies Entry]));
        this.#trees.set(id, m, 1);
        return m;
      })().finally(() => this.#treeLoads.delete(id));
      this.#treeLoads.set(id, p);
    }
    return p;
  }

  /**
   * The entry at `path` when it was looked up lately and no look at the repository is due: the
   * kernel asks for the same paths again and again (lookup, getattr, open, read), and this answers
   * without a walk from the root or a promise.
   */
  cached(path: string): Entry | undefined {
    if (performance.now() - this.#listedAt >= (this.#opts.refreshMs ?? 5000)) return undefined;
    return this.#paths.get(path);
  }

  /** The entry at `path` ("/" or "/a/b"); null when there is none. */
  async lookup(path: string): Promise<Entry | null> {
    await this.#refresh();
    const hit = this.#paths.get(path);
    if (hit) return hit;
    // From the nearest folder above that was looked up (the kernel looks up parents first).
    const cut = path.lastIndexOf('/');
    const above = cut > 0 ? this.#paths.get(path.slice(0, cut)) : undefined;
    let e: Entry = above ?? { kind: 'virtual-dir', children: async () => this.#root!, time: this.#newest() };
    for (const part of (above ? path.slice(cut + 1) : path).split('/')) {
      if (part === '') continue;
      const children = await this.children(e);
      const next = children?.get(part);
      if (!next) return null;
      e = next;
    }
    this.#paths.set(path, e, 1);
    return e;
  }

  #newest(): bigint {
    const s = this.#snapshots;
    return s.length > 0 ? timeOf(s[s.length - 1]) : 0n;
  }

  /** A folder's entries, or null for what is not a folder. */
  async children(e: Entry): Promise<Map<string, Entry> | null> {
    if (e.kind === 'virtual-dir') return e.children();
    if (e.kind === 'node' && e.node.type === 'dir') return e.node.subtree ? this.#treeEntries(e.node.subtree) : new Map();
    return null;
  }

  /** Where each of a file's blobs begins (sizes from the index). */
  layout(node: Node): FileLayout {
    const hit = this.#layouts.get(node);
    if (hit) return hit;
    const ids = node.content ?? [];
    const starts = [0];
    for (const id of ids) {
      const loc = this.#repo.index.lookup('data', id);
      if (!loc) throw new CairnError('INTEGRITY', `data blob ${id} is not in the index`);
      starts.push(starts[starts.length - 1] + plaintextLength(loc));
    }
    const l = { ids, starts };
    this.#layouts.set(node, l);
    return l;
  }

  /** Up to `length` bytes of a file from `pos` into `into`; resolves with how many (0 at its end). */
  async read(node: Node, into: Buffer, length: number, pos: number): Promise<number> {
    await this.#indexReady;
    const { ids, starts } = this.layout(node);
    const end = Math.min(pos + length, starts[ids.length]);
    if (pos >= end) return 0;
    // The blob holding `pos`: the last start at or before it.
    let lo = 0;
    let hi = ids.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid] <= pos) lo = mid;
      else hi = mid - 1;
    }
    const wanted: Promise<Buffer>[] = [];
    for (let i = lo; i < ids.length && starts[i] < end; i++) wanted.push(this.#blob(ids[i]));
    const blobs = await Promise.all(wanted);
    let done = 0;
    for (let k = 0; k < blobs.length && pos + done < end; k++) {
      const b = blobs[k];
      const from = pos + done - starts[lo + k];
      const n = Math.min(b.length - from, end - pos - done);
      b.copy(into, done, from, from + n);
      done += n;
    }
    return done;
  }

  /** A blob's plaintext, from the cache or loaded once however many reads wait for it (a failed load is not kept). */
  async #blob(id: Id): Promise<Buffer> {
    const hit = this.#blobs.get(id);
    if (hit) return hit;
    let p = this.#blobLoads.get(id);
    if (!p) {
      // A load that began just before the index was read again (a prune moved the blob) is tried
      // once more against the new one.
      const load = async (): Promise<Buffer> => {
        const loc = this.#repo.index.lookup('data', id);
        if (!loc) throw new CairnError('INTEGRITY', `data blob ${id} is not in the index`);
        return this.#repo.openBlob(id, loc, await this.#sealed(loc));
      };
      p = load()
        .catch(async () => {
          await this.#indexReady;
          return load();
        })
        .then((b) => {
          this.#blobs.set(id, b, b.length);
          return b;
        })
        .finally(() => this.#blobLoads.delete(id));
      this.#blobLoads.set(id, p);
    }
    return p;
  }

  /**
   * A blob's sealed bytes. Small blobs (small files, mostly) come from a window of their pack read
   * from the blob on: the next files' blobs usually follow in the same pack, and one read then
   * serves many files where a read per blob would pay a round trip (or, from disk, a seek) each.
   */
  async #sealed(loc: BlobLocation): Promise<Buffer> {
    const h = { type: 'data' as const, name: loc.packId };
    if (loc.length >= WINDOW) return this.#repo.backend.load(h, loc.offset, loc.length);
    const inWindow = (w: { from: number; bytes: Buffer } | undefined): Buffer | undefined =>
      w && loc.offset >= w.from && loc.offset + loc.length <= w.from + w.bytes.length ? w.bytes.subarray(loc.offset - w.from, loc.offset - w.from + loc.length) : undefined;
    const cached = inWindow(this.#windows.get(loc.packId));
    if (cached) return cached;
    // A window of this pack on its way may hold the blob: wait for it rather than read again.
    const pending = this.#windowLoads.get(loc.packId);
    if (pending) {
      const got = inWindow(await pending.catch(() => undefined));
      if (got) return got;
    }
    const load = (async () => {
      let size = this.#packSizes.get(loc.packId);
      if (size === undefined) {
        size = (await this.#repo.backend.stat(h)).size;
        this.#packSizes.set(loc.packId, size, 1);
      }
      const from = loc.offset;
      const bytes = await this.#repo.backend.load(h, from, Math.max(loc.length, Math.min(WINDOW, size - from)));
      const w = { from, bytes };
      this.#windows.set(loc.packId, w, bytes.length);
      return w;
    })();
    this.#windowLoads.set(loc.packId, load);
    try {
      const got = inWindow(await load);
      if (!got) throw new CairnError('INTEGRITY', `pack ${loc.packId} is shorter than the index says`);
      return got;
    } finally {
      if (this.#windowLoads.get(loc.packId) === load) this.#windowLoads.delete(loc.packId);
    }
  }

  /** st_mode for an entry: the node's type and permissions; folders made here are r-x for all. */
  static mode(e: Entry): number {
    if (e.kind === 'virtual-dir') return 0o040555;
    if (e.kind === 'virtual-link') return 0o120777;
    const n = e.node;
    const perm = n.mode === undefined ? (n.type === 'dir' ? 0o755 : 0o644) : unixPermFromGoMode(n.mode);
    const type = { file: 0o100000, dir: 0o040000, symlink: 0o120000, dev: 0o060000, chardev: 0o020000, fifo: 0o010000, socket: 0o140000 }[n.type];
    return type | perm;
  }
}
