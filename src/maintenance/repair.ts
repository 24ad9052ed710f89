import { CairnError } from '../errors.js';
import type { Id } from '../repository/id.js';
import { parsePackTail, type PackedBlob } from '../repository/pack.js';
import type { Repository } from '../repository/repository.js';
import { mapLimit } from '../util/limit.js';

export interface RepairIndexResult {
  packs: number;
  blobs: number;
  /** Packs whose header could not be read: left in place, not indexed. */
  damaged: { pack: Id; message: string }[];
  indexFilesWritten: number;
  indexFilesRemoved: number;
}

/** A pack's tail is read with this much slack, so most headers need one read. */
const TAIL_GUESS = 64 * 1024;

/** Reads one pack's header from its tail. */
export async function readPackHeader(repo: Repository, id: Id, size: number): Promise<PackedBlob[]> {
  const off = Math.max(0, size - TAIL_GUESS);
  let tail = await repo.backend.load({ type: 'data', name: id }, off, size - off);
  let parsed = parsePackTail(repo.key, tail, size, id);
  if ('need' in parsed) {
    tail = await repo.backend.load({ type: 'data', name: id }, size - parsed.need, parsed.need);
    parsed = parsePackTail(repo.key, tail, size, id);
  }
  if ('need' in parsed) throw new CairnError('INTEGRITY', `pack ${id}: header does not fit the file`);
  return parsed.blobs;
}

/**
 * Rebuilds the index from the packs themselves (restic's `repair index`, formerly
 * `rebuild-index`): every pack's header is read and verified, new index files that supersede all
 * old ones are written, then the old ones are removed. Packs whose header is damaged are named and
 * left out; the data in them is lost to snapshots that need it, which `check` then reports.
 */
export async function repairIndex(repo: Repository, opts: { signal?: AbortSignal } = {}): Promise<RepairIndexResult> {
  const oldIndexIds = await repo.listIds('index');
  const packs: { id: Id; size: number }[] = [];
  for await (const f of repo.backend.list('data')) packs.push({ id: f.name, size: f.size });
  const damaged: RepairIndexResult['damaged'] = [];
  const indexed = (
    await mapLimit(packs, 8, async (p) => {
      if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'repair interrupted');
      try {
        return { id: p.id, blobs: await readPackHeader(repo, p.id, p.size) };
      } catch (err) {
        if (err instanceof CairnError && err.code === 'INTERRUPTED') throw err;
        damaged.push({ pack: p.id, message: (err as Error).message });
        return null;
      }
    })
  ).filter((p): p is { id: Id; blobs: PackedBlob[] } => p !== null && p.blobs.length > 0);
  const written = await repo.saveIndex(indexed, oldIndexIds);
  for (const id of oldIndexIds) await repo.backend.remove({ type: 'index', name: id });
  return {
    packs: indexed.length,
    blobs: indexed.reduce((n, p) => n + p.blobs.length, 0),
    damaged,
    indexFilesWritten: written.length,
    indexFilesRemoved: oldIndexIds.length,
  };
}
