import { CairnError } from '../errors.js';
import { parseSize } from '../util/size.js';
import { decompress } from '../compress/zstd.js';
import { hashId, type Id } from '../repository/id.js';
import { PackBuilder, type BlobType, type PackedBlob } from '../repository/pack.js';
import { PackListing } from './pack-listing.js';
import { PACK_SIZE, type Repository } from '../repository/repository.js';

/** How much unused space may stay in packs after pruning: a share of the used data, bytes, or no limit. */
export type MaxUnused = { percent: number } | { bytes: number } | 'unlimited';

export function parseMaxUnused(s: string): MaxUnused {
  if (s === 'unlimited') return 'unlimited';
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(s);
  if (pct) return { percent: Number(pct[1]) };
  // Zero is a size here (repack everything partly used), though not elsewhere.
  if (/^0+(\.0+)?\s*[kKmMgGtT]?(i?[bB])?$/.test(s)) return { bytes: 0 };
  if (/^\d/.test(s)) {
    try {
      return { bytes: parseSize(s, '--max-unused') };
    } catch {
      // Falls through to the message that names every accepted form.
    }
  }
  throw new CairnError('BAD_INPUT', `invalid --max-unused ${JSON.stringify(s)}: use a percentage (5%), a size (10M) or unlimited`);
}

export interface PruneStats {
  packs: number;
  packsRemoved: number;
  packsRepacked: number;
  packsWritten: number;
  blobsRemoved: number;
  bytesFreed: number;
  unusedBefore: number;
  unusedAfter: number;
  /**
   * In a version 2 repository, the size of the packs that stay as they are and hold uncompressed
   * blobs (restic's "not yet compressed"): what `--repack-uncompressed` would compress.
   */
  notCompressed: number;
}

/** A pack as prune sees it: what it holds, how many of its blobs it keeps (`usedBlobs`), and their bytes. */
export interface PackInfo {
  id: Id;
  /** restic never mixes trees and data in one pack, but an old or foreign pack may. */
  kind: BlobType | 'mixed';
  blobs: number;
  usedBlobs: number;
  usedBytes: number;
  unusedBytes: number;
  /**
   * Holds uncompressed blobs that must be compressed (restic's rule in a version 2 repository: a
   * tree pack always, a data pack with --repack-uncompressed): repacked whatever it holds unused,
   * within --max-repack-size.
   */
  mustCompress?: boolean;
  /** Holds at least one blob stored uncompressed. */
  uncompressed?: boolean;
}

/** Packs below this size are small: many of them are merged (restic's rule, a 25th of a pack). */
const SMALL_PACK = PACK_SIZE / 25;
/** Fewer small packs than this stay as they are: merging them gains little, and a lone small pack would be repacked forever. */
const SMALL_PACKS_WORTH_MERGING = 10;

/**
 * Which of the packs that hold needed blobs to repack, as restic 0.14 decides, so that both tools
 * leave a repository alike:
 * - packs with trees that hold unused blobs, packs that mix trees and data, and packs that must
 *   be compressed (`mustCompress`): always (tree packs are small, and every walk reads them);
 * - fully used small packs (each backup ends with one or two), once there are at least ten;
 * - other partly used packs, the largest unused share first, while more than `limit` unused
 *   bytes would stay.
 * Tree packs come first, then small packs; a pack that would take the repacked total to
 * `maxRepack` bytes is kept. With `cacheableOnly` (restic's --repack-cacheable-only) no data pack
 * is repacked: only what a local cache would hold is downloaded. Returns the packs to repack and
 * the unused bytes left in the others.
 */
export function planRepack(packs: readonly PackInfo[], limit: number, maxRepack: number, opts: { cacheableOnly?: boolean } = {}): { repack: PackInfo[]; unusedLeft: number } {
  const size = (p: PackInfo): number => p.usedBytes + p.unusedBytes;
  const repackable = packs.filter((p) => !(opts.cacheableOnly && p.kind === 'data'));
  const candidates = repackable.filter((p) => p.unusedBytes > 0 || p.kind === 'mixed' || p.mustCompress);
  const small = repackable.filter((p) => p.unusedBytes === 0 && p.kind !== 'mixed' && !p.mustCompress && size(p) < SMALL_PACK);
  if (small.length >= SMALL_PACKS_WORTH_MERGING) candidates.push(...small);
  const rank = (p: PackInfo): number => (p.kind !== 'data' ? 0 : size(p) < SMALL_PACK ? 1 : 2);
  candidates.sort((a, b) => rank(a) - rank(b) || b.unusedBytes * size(a) - a.unusedBytes * size(b));
  let unusedLeft = packs.reduce((s, p) => s + p.unusedBytes, 0);
  let repackBytes = 0;
  const repack: PackInfo[] = [];
  for (const p of candidates) {
    if (repackBytes + size(p) >= maxRepack) continue;
    if (p.kind === 'data' && !p.mustCompress && unusedLeft <= limit && size(p) >= SMALL_PACK) continue;
    repack.push(p);
    repackBytes += size(p);
    unusedLeft -= p.unusedBytes;
  }
  return { repack, unusedLeft };
}

/**
 * restic's prune: find the blobs every snapshot still needs, delete packs that hold none of them,
 * repack packs as restic does (see planRepack), and replace the index.
 * Order for crash safety: new packs, then the new index (superseding the old), then old index
 * files, then old packs; a crash at any point leaves a repository restic check accepts.
 * Refuses to run when a snapshot or tree cannot be read: it could not know what is in use.
 * In a version 2 repository, repacked blobs that are not compressed are compressed (trees always,
 * data unless compression is off), as restic's repacking does; `repackUncompressed` repacks every
 * pack that holds an uncompressed data blob too (restic's --repack-uncompressed).
 */
export async function prune(repo: Repository, opts: { maxUnused?: MaxUnused; maxRepackBytes?: number; repackUncompressed?: boolean; repackCacheableOnly?: boolean; dryRun?: boolean; signal?: AbortSignal } = {}): Promise<PruneStats> {
  const v2 = repo.config.version >= 2;
  if (opts.repackUncompressed && !v2) throw new CairnError('BAD_INPUT', '--repack-uncompressed: compression requires repository format version 2 (run "cairn migrate upgrade_repo_v2" first)');
  if (opts.repackUncompressed && repo.compression === 'off') throw new CairnError('BAD_INPUT', '--repack-uncompressed and --compression off cannot be used together');
  const maxUnused = opts.maxUnused ?? { percent: 5 };
  const oldIndexIds = await repo.listIds('index');
  const listing = new PackListing();
  await repo.loadIndex({ onFile: (_id, listed) => listing.addListed(listed) });
  const index = repo.index;
  listing.resolve(index);

  // Everything the snapshots reach, marked in the index's table (a byte a slot).
  const used = new Uint8Array(index.slots);
  let unindexed: string | null = null;
  /** Marks a blob used; false when it was already (or is not in the index: the first such is named). */
  const mark = (type: BlobType, id: Id): boolean => {
    const s = index.slot(type, id);
    if (s < 0) {
      unindexed ??= `${type} blob ${id}`;
      return false;
    }
    if (used[s]) return false;
    used[s] = 1;
    return true;
  };
  const walk = async (tree: Id): Promise<void> => {
    if (!mark('tree', tree)) return;
    const t = await repo.loadTree(tree);
    for (const n of t.nodes) {
      if (n.type === 'file') for (const b of n.content ?? []) mark('data', b);
      else if (n.type === 'dir' && n.subtree) await walk(n.subtree);
    }
  };
  const snapshots = await repo.listSnapshots();
  for (const s of snapshots) {
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'prune interrupted');
    try {
      await walk(s.tree);
    } catch (err) {
      throw new CairnError('INTEGRITY', `snapshot ${s.id} cannot be read completely (${(err as Error).message}); run "cairn check" first: prune stops rather than guess what is in use`);
    }
  }
  if (unindexed) throw new CairnError('INTEGRITY', `a snapshot needs ${unindexed}, which no index lists; run "cairn check"`);

  const onDisk = new Map<Id, number>();
  for await (const f of repo.backend.list('data')) onDisk.set(f.name, f.size);
  for (const id of listing.packIds) {
    if (!onDisk.has(id)) throw new CairnError('INTEGRITY', `pack ${id} is listed in the index but missing; run "cairn check"`);
  }

  // Each needed blob is kept once: where the index looks it up (the first pack listed with it); other copies are unused.
  const kept = new Uint8Array(listing.size);
  const packs: PackInfo[] = listing.packIds.map((id, p) => {
    const info: PackInfo = { id, kind: 'data', blobs: 0, usedBlobs: 0, usedBytes: 0, unusedBytes: 0 };
    let trees = 0;
    let uncompressed = false;
    for (const e of listing.blobsOf(p)) {
      const s = listing.slot(e);
      info.blobs++;
      if (index.slotType(s) === 'tree') trees++;
      if (!listing.compressed(e)) uncompressed = true;
      if (used[s] && index.locatedAt(s, id, listing.offset(e))) {
        kept[e] = 1;
        info.usedBlobs++;
        info.usedBytes += listing.length(e);
      } else info.unusedBytes += listing.length(e);
    }
    if (trees > 0) info.kind = trees === info.blobs ? 'tree' : 'mixed';
    if (uncompressed) info.uncompressed = true;
    if (v2 && uncompressed && (info.kind === 'tree' || opts.repackUncompressed)) info.mustCompress = true;
    return info;
  });
  const unreferenced = [...onDisk.keys()].filter((id) => !listing.has(id));
  const removeWhole = packs.filter((p) => p.usedBlobs === 0);
  const usedTotal = packs.reduce((s, p) => s + p.usedBytes, 0);
  const unusedBefore = packs.reduce((s, p) => s + p.unusedBytes, 0);
  const limit = maxUnused === 'unlimited' ? Infinity : 'percent' in maxUnused ? (usedTotal * maxUnused.percent) / 100 : maxUnused.bytes;
  const { repack, unusedLeft } = planRepack(
    packs.filter((p) => p.usedBlobs > 0),
    limit,
    opts.maxRepackBytes ?? Infinity,
    { cacheableOnly: opts.repackCacheableOnly },
  );

  const stats: PruneStats = {
    packs: onDisk.size,
    packsRemoved: removeWhole.length + unreferenced.length,
    packsRepacked: repack.length,
    packsWritten: 0,
    blobsRemoved: [...removeWhole, ...repack].reduce((s, p) => s + p.blobs - p.usedBlobs, 0),
    bytesFreed: removeWhole.reduce((s, p) => s + (onDisk.get(p.id) ?? 0), 0) + unreferenced.reduce((s, id) => s + (onDisk.get(id) ?? 0), 0) + repack.reduce((s, p) => s + p.unusedBytes, 0),
    unusedBefore,
    unusedAfter: unusedLeft,
    notCompressed: 0,
  };
  const gone = new Set([...removeWhole, ...repack].map((p) => p.id));
  if (v2) stats.notCompressed = packs.reduce((s, p) => s + (p.uncompressed && !gone.has(p.id) ? (onDisk.get(p.id) ?? 0) : 0), 0);
  if (opts.dryRun || (removeWhole.length === 0 && repack.length === 0 && unreferenced.length === 0)) return stats;

  // Repack: verify each needed blob, then copy its sealed bytes as they are into new packs.
  const newPacks: { id: Id; blobs: PackedBlob[] }[] = [];
  let written = 0;
  const builders: Record<BlobType, PackBuilder | null> = { data: null, tree: null };
  const flush = async (type: BlobType): Promise<void> => {
    const b = builders[type];
    builders[type] = null;
    if (!b || b.count === 0) return;
    const { id, bytes, blobs } = b.finish();
    await repo.backend.save({ type: 'data', name: id }, bytes);
    newPacks.push({ id, blobs });
    written += bytes.length;
  };
  for (const p of repack) {
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'prune interrupted');
    const bytes = await repo.backend.load({ type: 'data', name: p.id });
    for (const e of listing.blobsOf(listing.packNumber(p.id))) {
      if (!kept[e]) continue;
      const b = listing.blob(e, index);
      const sealed = bytes.subarray(b.offset, b.offset + b.length);
      let plain: Buffer;
      try {
        plain = repo.key.decrypt(sealed);
        if (b.uncompressedLength !== undefined) plain = decompress(plain, b.uncompressedLength);
      } catch {
        throw new CairnError('INTEGRITY', `pack ${p.id}: ${b.type} blob ${b.id} is damaged; prune stops (run "cairn check --read-data")`);
      }
      if (hashId(plain) !== b.id) throw new CairnError('INTEGRITY', `pack ${p.id}: ${b.type} blob ${b.id} has the wrong content; prune stops`);
      builders[b.type] ??= new PackBuilder(repo.key);
      if (v2 && b.uncompressedLength === undefined && (b.type === 'tree' || repo.compression !== 'off')) {
        const again = repo.sealBlob(plain, b.type, opts.repackUncompressed);
        builders[b.type]!.add(b.type, b.id, again.bytes, again.uncompressedLength);
      } else builders[b.type]!.add(b.type, b.id, sealed, b.uncompressedLength);
      if (builders[b.type]!.size >= PACK_SIZE) await flush(b.type);
    }
  }
  await flush('data');
  await flush('tree');
  stats.packsWritten = newPacks.length;

  // The new index lists every pack that stays, and supersedes all the old index files.
  const staying = listing.packIds.flatMap((id, p) => (gone.has(id) ? [] : [listing.forIndex(p, index)]));
  await repo.saveIndex([...staying, ...newPacks], oldIndexIds);
  for (const id of oldIndexIds) await repo.backend.remove({ type: 'index', name: id });
  for (const id of [...gone, ...unreferenced]) await repo.backend.remove({ type: 'data', name: id });
  // Exact now: the estimate could not know the new packs' headers.
  stats.bytesFreed = [...gone, ...unreferenced].reduce((s, id) => s + (onDisk.get(id) ?? 0), 0) - written;
  return stats;
}
