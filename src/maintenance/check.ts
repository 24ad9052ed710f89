import { CairnError } from '../errors.js';
import { loadRange } from '../backend/backend.js';
import type { Id } from '../repository/id.js';
import { ROW_OFFSET, ROW_PACK, ROW_TREE, ROW_WORDS, writeRowId, type ScannedIndex } from '../repository/index-scan.js';
import { LISTING_RECORD, encodeListing } from '../repository/pack.js';
import { readPackHeader } from './repair.js';
import type { Repository } from '../repository/repository.js';
import type { WorkerPool } from '../repository/worker-pool.js';
import type { CheckPackResult } from '../repository/worker-protocol.js';
import { FolderStore, readTreeFacts } from '../repository/tree-facts.js';
import { Limiter, mapLimit, Yielder } from '../util/limit.js';
import { parseSize } from '../util/size.js';
import { BoundedQueue, runStage } from '../util/queue.js';

export interface CheckOptions {
  readData?: boolean;
  /**
   * With `readData`, which packs to read whole (restic's --read-data-subset, see
   * parseReadDataSubset): chosen among the packs the index lists and the repository holds, once the
   * index is in; the others have their headers checked, as without `readData`.
   */
  readSubset?: PackSelector;
  signal?: AbortSignal;
  onProgress?: (p: { phase: string; done: number; total: number }) => void;
}

export interface CheckResult {
  /** Damage: each names the pack, blob, tree or snapshot. */
  errors: string[];
  /** Not damage, but worth knowing (e.g. packs no index mentions). */
  warnings: string[];
  packs: number;
  /** Packs read whole and verified blob by blob. */
  packsRead: number;
  /** Their bytes. */
  bytesRead: number;
  snapshots: number;
}

/** Picks the packs to read whole from the checkable ones (id -> size). */
export type PackSelector = (packs: ReadonlyMap<Id, number>) => Set<Id>;

/** A parsed --read-data-subset: what it reads, in words ("group #2 of 7", "10%", "500M"), and the selector. */
export interface ReadDataSubset {
  label: string;
  select: PackSelector;
}

/** A walked tree's verdict (0: not yet settled). */
const SOUND = 1;
const DAMAGED = 2;

/** restic's limit on t in n/t: it splits packs by the first byte of their id. */
const MAX_BUCKETS = 256;

/**
 * restic's --read-data-subset: `n/t` reads group n of t (the packs whose id's first byte is n-1
 * modulo t, so running 1/t to t/t over t days reads every pack once, as restic's groups do),
 * `x%` (or `x.y%`) a random x percent of the packs (at least one), and a size (`500M`, `2G`) random
 * packs until that many bytes. `random` returns numbers in [0, 1) (tests pass their own).
 */
export function parseReadDataSubset(spec: string, random: () => number = Math.random): ReadDataSubset {
  const bad = (why: string): CairnError => new CairnError('BAD_INPUT', `invalid --read-data-subset ${JSON.stringify(spec)}: ${why}`);
  const s = spec.trim();
  const group = /^(\d+)\/(\d+)$/.exec(s);
  if (group) {
    const n = Number(group[1]);
    const t = Number(group[2]);
    if (t < 1 || t > MAX_BUCKETS) throw bad(`t must be between 1 and ${MAX_BUCKETS}`);
    if (n < 1 || n > t) throw bad('n must be between 1 and t');
    return {
      label: `group #${n} of ${t}`,
      select: (packs) => new Set([...packs.keys()].filter((id) => parseInt(id.slice(0, 2), 16) % t === n - 1)),
    };
  }
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(s);
  if (percent) {
    const x = Number(percent[1]);
    if (!(x > 0 && x <= 100)) throw bad('the percentage must be above 0 and at most 100');
    return {
      label: `${x}%`,
      select: (packs) => {
        const ids = shuffled([...packs.keys()], random);
        return new Set(ids.slice(0, Math.max(ids.length > 0 ? 1 : 0, Math.floor((ids.length * x) / 100))));
      },
    };
  }
  if (!/^\d/.test(s)) throw bad("use n/t, a percentage such as 10% or a size such as 500M");
  let bytes: number;
  try {
    bytes = parseSize(s, '--read-data-subset');
  } catch {
    throw bad("use n/t, a percentage such as 10% or a size such as 500M");
  }
  return {
    label: s,
    select: (packs) => {
      const out = new Set<Id>();
      let total = 0;
      for (const id of shuffled([...packs.keys()], random)) {
        if (total >= bytes) break;
        out.add(id);
        total += packs.get(id)!;
      }
      return out;
    },
  };
}

/**
 * What a scheduled check reads of the packs' contents: nothing, all, restic's subset, or
 * (`next/t`) the group after the one the previous check read, of t groups.
 */
export type CheckReadData = { kind: 'none' } | { kind: 'all' } | { kind: 'subset'; spec: string } | { kind: 'next'; groups: number };

export function parseCheckReadData(v: boolean | string): CheckReadData {
  if (v === false) return { kind: 'none' };
  if (v === true) return { kind: 'all' };
  const next = /^next\/(\d+)$/.exec(v.trim());
  if (next) {
    const t = Number(next[1]);
    if (t < 1 || t > MAX_BUCKETS) throw new CairnError('BAD_INPUT', `invalid readData ${JSON.stringify(v)}: t must be between 1 and ${MAX_BUCKETS}`);
    return { kind: 'next', groups: t };
  }
  try {
    parseReadDataSubset(v);
  } catch (err) {
    throw new CairnError('BAD_INPUT', `${(err as Error).message.replace('--read-data-subset', 'readData')}, or next/t for the next of t groups at each run`);
  }
  return { kind: 'subset', spec: v.trim() };
}

/** Fisher-Yates, in place. */
function shuffled<T>(a: T[], random: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Reading every pack, the index loads once the listing ends or has found this many (see checkRepository). */
const LISTED_BEFORE_INDEX = 256;

/**
 * restic's check: index files load; every pack the index names exists and its header agrees with
 * the index; every snapshot's trees load and every blob they reference is indexed; with
 * `readData`, every pack is read whole and every blob decrypted and hashed.
 */
export async function checkRepository(repo: Repository, pool: WorkerPool | null, opts: CheckOptions = {}): Promise<CheckResult> {
  const res: CheckResult = { errors: [], warnings: [], packs: 0, packsRead: 0, bytesRead: 0, snapshots: 0 };
  const expected = new Map<Id, Buffer[]>();

  // The index loads while the packs are listed (a listing is one request per folder on a remote),
  // and with `readData` the packs are read and checked meanwhile, each as soon as the listing
  // finds it: a pack's bytes check against themselves (its hash, its header, its blobs' MACs and
  // hashes), and only comparing its header with what the index lists waits for the index. That
  // takes the index's load, ~0.2 s for the benchmark's 51,000 blobs, off the time before the
  // workers start. The index's load waits for the listing to end or to find LISTED_BEFORE_INDEX
  // packs (work for the workers meanwhile): on one thread with it, a local listing went on only
  // between the index's parses, gave its first pack when the load was nearly done (~0.15 s after it
  // began) and then the benchmark's packs one by one, so a worker waited ~0.1 s more for its first.
  const onDisk = new Map<Id, number>();
  const readAll = !!(opts.readData && pool && !opts.readSubset);
  /** With every pack read, the packs as the listing finds them, for the readers (see checkPacks). */
  const found = readAll ? new BoundedQueue<Id>(Infinity) : null;
  let enoughFound = (): void => undefined;
  const enough = found ? new Promise<void>((resolve) => (enoughFound = resolve)) : Promise.resolve();
  const listing = (async () => {
    try {
      for await (const f of repo.backend.list('data')) {
        onDisk.set(f.name, f.size);
        void found?.push(f.name);
        if (onDisk.size === LISTED_BEFORE_INDEX) enoughFound();
      }
    } finally {
      found?.close();
      enoughFound();
    }
  })();
  listing.catch(() => undefined);
  const indexLoaded = enough.then(() =>
    repo.loadIndex({
      onFile: (_id, listed) => {
        const listings = encodeListings(listed);
        listed.packs.forEach((packId, p) => {
          let lists = expected.get(packId);
          if (!lists) expected.set(packId, (lists = []));
          lists.push(listings[p]);
        });
      },
      onError: (id, err) => res.errors.push(`index ${id}: ${(err as Error).message}`),
    }),
  );
  indexLoaded.catch(() => undefined);
  const index = repo.index;

  /** Packs no index lists: a warning each, and not checked (restic checks the indexed packs). */
  const unreferenced = new Set<Id>();
  const ready = (async () => {
    await listing;
    res.packs = onDisk.size;
    await indexLoaded;
    for (const id of onDisk.keys()) {
      if (expected.has(id)) continue;
      unreferenced.add(id);
      res.warnings.push(`pack ${id}: not referenced in any index`);
    }
    for (const id of expected.keys()) if (!onDisk.has(id)) res.errors.push(`pack ${id}: does not exist (listed in the index)`);
  })();
  ready.catch(() => undefined);

  let done = 0;
  /** Every blob the index lists for pack `id` must be in its header (`header`: listing records, see LISTING_RECORD). */
  const verifyHeader = (id: Id, header: Buffer): void => {
    const lists = expected.get(id)!;
    expected.delete(id);
    // The index almost always lists a pack's blobs as its header does, in the same order.
    if (lists.every((list) => list.equals(header))) return;
    const got = new Set<string>();
    for (let o = 0; o < header.length; o += LISTING_RECORD) got.add(header.toString('latin1', o, o + LISTING_RECORD));
    const missing = new Set<string>();
    for (const list of lists) {
      for (let o = 0; o < list.length; o += LISTING_RECORD) {
        if (!got.has(list.toString('latin1', o, o + LISTING_RECORD))) missing.add(`${list[o + 32] === 1 ? 'tree' : 'data'} blob ${list.toString('hex', o, o + 32)}`);
      }
    }
    for (const m of missing) res.errors.push(`pack ${id}: ${m} listed in the index is not in the pack`);
  };
  // Reading data: a pack stored as a local file is read by the worker that checks it, piece by
  // piece (see checkPackFile), two per worker so that none waits for the next; others are loaded
  // here into buffers that the workers hand back, two per worker (one being checked, one waiting)
  // and one loading. With one per worker and none loading, the workers waited for reads.
  const workers = pool?.size ?? 1;
  const localPath = repo.backend.localPath;
  const inFlight = localPath ? workers * 2 : workers * 2 + 1;
  // With every pack read, the workers that open the trees hand back what the walk needs of each
  // (see tree-facts.ts), so the walk waits for the packs and loads only the trees of which no
  // sound copy was read: loading, decrypting, decompressing and hashing every tree a second time
  // on the main thread took ~0.5 CPU s of the benchmark's check beside two busy workers, and its
  // tree pack cache ~15 MiB. A tree whose files' blobs are all indexed leaves only its
  // subfolders, as bytes, until the walk takes them.
  const useFacts = readAll;
  /** Made once the index is in: it finds a tree by its slot there. */
  let folders: FolderStore | null = null;
  /** Whether the index holds every data blob of `blobs` (ids, 32 bytes each). */
  const indexed = (blobs: Uint8Array): boolean => {
    for (let o = 0; o < blobs.length; o += 32) if (index.slot('data', blobs.subarray(o, o + 32)) < 0) return false;
    return true;
  };
  const checkPacks = async (): Promise<void> => {
    const reading = !!(opts.readData && pool);
    // The packs read whole: all of them as they are listed (a pack's bytes check against themselves
    // while the index loads), or a subset chosen among the indexed packs once the index is in. The
    // others' headers are compared with the index: the indexed packs, once it is in.
    let toRead: Id[] = [];
    if (reading && opts.readSubset) {
      await ready;
      const checkable = new Map<Id, number>();
      for (const id of expected.keys()) {
        const size = onDisk.get(id);
        if (size !== undefined) checkable.set(id, size);
      }
      toRead = [...opts.readSubset(checkable)];
    }
    const chosen = new Set(toRead);
    /** Packs whose headers alone are checked. */
    let headers = 0;
    const settle = (id: Id, err: unknown, phase: string): void => {
      if (err) res.errors.push(err instanceof CairnError && (err as Error).message.startsWith('pack ') ? (err as Error).message : `pack ${id}: ${(err as Error).message}`);
      // Reading every pack, the total grows as the listing goes.
      opts.onProgress?.({ phase, done: ++done, total: (readAll ? onDisk.size : toRead.length) + headers });
    };
    const loadAndCheck = async (id: Id, size: number): Promise<CheckPackResult> => {
      const buf = pool!.buffer(size);
      let data: Buffer;
      try {
        data = await loadRange(repo.backend, { type: 'data', name: id }, 0, size, buf);
      } catch (err) {
        pool!.recycle(buf);
        throw err;
      }
      if (data.buffer !== buf.buffer) pool!.recycle(buf);
      return pool!.checkPack(id, data, useFacts);
    };
    const readPack = async (id: Id): Promise<void> => {
      if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'check interrupted');
      const size = onDisk.get(id)!;
      try {
        const r = localPath ? await pool!.checkPackFile(id, await localPath({ type: 'data', name: id }), useFacts) : await loadAndCheck(id, size);
        await ready;
        if (unreferenced.has(id)) return;
        res.packsRead++;
        res.bytesRead += size;
        res.errors.push(...r.errors);
        if (r.listing.length > 0) verifyHeader(id, Buffer.from(r.listing.buffer, r.listing.byteOffset, r.listing.length));
        // A tree whose files reference a blob the index lacks is left to the walk, which names each.
        if (r.trees) {
          readTreeFacts(r.trees, (tree, f) => {
            const slot = f && indexed(f.blobs) ? index.slot('tree', tree) : -1;
            if (slot >= 0) (folders ??= new FolderStore(index.slots)).add(slot, f!);
          });
        }
      } catch (err) {
        settle(id, err, 'read data');
        return;
      }
      settle(id, null, 'read data');
    };
    const readPacks = found
      ? runStage(found, null, inFlight, async (id) => {
          await readPack(id);
          return null;
        })
      : mapLimit(toRead, inFlight, readPack);
    const readHeaders = (async () => {
      await ready;
      const ids = readAll ? [] : [...expected.keys()].filter((id) => onDisk.has(id) && !chosen.has(id));
      headers = ids.length;
      await mapLimit(ids, 8, async (id) => {
        if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'check interrupted');
        try {
          verifyHeader(id, encodeListing(await readPackHeader(repo, id, onDisk.get(id)!)));
        } catch (err) {
          settle(id, err, 'packs');
          return;
        }
        settle(id, null, 'packs');
      });
    })();
    const [a, b] = await Promise.allSettled([readPacks, readHeaders]);
    for (const r of [a, b]) if (r.status === 'rejected') throw r.reason;
  };

  // Trees: every snapshot's, each tree once; every referenced blob must be indexed. A tree's
  // verdict covers its whole subtree and is remembered, so each snapshot that reaches damage is
  // named: by the tree's slot in the index, a byte a slot once settled (a map of ids to promises
  // took ~175 bytes a tree), and as a promise while its subtrees are walked.
  let settled: Uint8Array | null = null;
  const walking = new Map<number, Promise<boolean>>();
  /** Trees the index lacks, each reported once. */
  const unindexed = new Set<Id>();
  const limiter = new Limiter(8);
  // Trees come from cached tree packs, so the walk would hold the thread until it ends, and
  // packs loaded meanwhile would wait to be handed to the workers. It pauses inside the limiter,
  // so that a pause holds every turn and the trees waiting for one do not run meanwhile.
  const yielder = new Yielder();
  const walkTree = (id: Id, where: string): Promise<boolean> | boolean => {
    const slot = index.slot('tree', id);
    if (slot < 0) {
      if (!unindexed.has(id)) treeErrors.push(`tree ${id} (${where}): not in the index`);
      unindexed.add(id);
      return false;
    }
    settled ??= new Uint8Array(index.slots);
    if (settled[slot] !== 0) return settled[slot] === SOUND;
    let v = walking.get(slot);
    if (!v) {
      v = checkTree(id, slot, where).then((ok) => {
        settled![slot] = ok ? SOUND : DAMAGED;
        walking.delete(slot);
        return ok;
      });
      walking.set(slot, v);
    }
    return v;
  };
  const checkTree = async (id: Id, slot: number, where: string): Promise<boolean> => {
    const facts = folders?.take(slot);
    if (facts) {
      // A turn of its own, so that a deep folder is walked a level per turn, not down the stack;
      // and one subfolder after another, depth first, so that the trees being walked (and their
      // facts, taken out of the store) are as few as the folders are deep, not the whole walk's.
      await Promise.resolve();
      let ok = true;
      for (let i = 0; i < facts.subtrees.length; i++) {
        if (!(await walkTree(facts.subtrees[i], `${where === '/' ? '' : where}/${facts.names[i]}`))) ok = false;
      }
      return ok;
    }
    let nodes;
    try {
      nodes = (
        await limiter.run(async () => {
          await yielder.maybe();
          return repo.loadTree(id);
        })
      ).nodes;
    } catch (err) {
      treeErrors.push(`tree ${id} (${where}): ${(err as Error).message}`);
      return false;
    }
    let ok = true;
    const subs: (Promise<boolean> | boolean)[] = [];
    for (const n of nodes) {
      const p = `${where === '/' ? '' : where}/${n.name}`;
      if (n.type === 'file') {
        for (const b of n.content ?? []) {
          if (!index.has('data', b)) {
            treeErrors.push(`file ${p} (tree ${id}): data blob ${b} not in the index`);
            ok = false;
          }
        }
      } else if (n.type === 'dir') {
        if (!n.subtree) {
          treeErrors.push(`dir ${p} (tree ${id}): no subtree`);
          ok = false;
        } else subs.push(walkTree(n.subtree, p));
      }
    }
    return (await Promise.all(subs)).every(Boolean) && ok;
  };
  /** With facts, the walk waits for `packs`, the packs' reading (whose failure is reported there). */
  const checkSnapshots = async (packs: Promise<void>): Promise<void> => {
    await ready;
    const snapshots = await repo.listSnapshots((id, err) => treeErrors.push(`snapshot ${id}: ${(err as Error).message}`));
    res.snapshots = snapshots.length;
    if (useFacts) await packs.catch(() => undefined);
    for (const s of snapshots) {
      if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'check interrupted');
      if (!s.tree) {
        treeErrors.push(`snapshot ${s.id}: no tree`);
        continue;
      }
      if (!(await walkTree(s.tree, '/'))) treeErrors.push(`snapshot ${s.id}: references damaged or missing data`);
    }
  };

  // The trees are walked while the packs are read (or, with facts, once they are): reading data
  // keeps the workers busy and leaves the main thread mostly idle. Their errors are reported after
  // the packs', as when run in turn.
  const treeErrors: string[] = [];
  const packs = checkPacks();
  const [packsDone, snapshotsDone] = await Promise.allSettled([packs, checkSnapshots(packs)]);
  for (const r of [packsDone, snapshotsDone]) if (r.status === 'rejected') throw r.reason;
  res.errors.push(...treeErrors);
  return res;
}

/**
 * Per pack of an index file (by its number there), the blobs the file lists for it, as listing
 * records (see LISTING_RECORD), kept until the pack is read: a million blobs take 37 MiB, not the
 * ~150 MiB of a map of objects. The index has checked ids and offsets by then (MasterIndex.addPack).
 */
function encodeListings(listed: ScannedIndex): Buffer[] {
  const { rows } = listed;
  const end = listed.count * ROW_WORDS;
  const counts = new Array<number>(listed.packs.length).fill(0);
  for (let r = 0; r < end; r += ROW_WORDS) counts[rows[r + ROW_PACK]]++;
  const out = counts.map((n) => Buffer.allocUnsafe(n * LISTING_RECORD));
  const at = counts.fill(0);
  for (let r = 0; r < end; r += ROW_WORDS) {
    const p = rows[r + ROW_PACK];
    const o = at[p]++ * LISTING_RECORD;
    writeRowId(rows, r, out[p], o);
    out[p][o + 32] = rows[r + ROW_TREE];
    out[p].writeUInt32LE(rows[r + ROW_OFFSET], o + 33);
  }
  return out;
}
