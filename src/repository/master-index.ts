import { CairnError } from '../errors.js';
import type { Id } from './id.js';
import type { BlobType, PackedBlob } from './pack.js';

/** Where a blob lives. */
export interface BlobLocation {
  readonly packId: Id;
  readonly type: BlobType;
  readonly offset: number;
  readonly length: number;
  readonly uncompressedLength?: number;
}

/** An index file's JSON, as restic writes it. */
export interface IndexJSON {
  supersedes?: Id[];
  packs: {
    id: Id;
    blobs: { id: Id; type: BlobType; offset: number; length: number; uncompressed_length?: number }[];
  }[];
}

/** restic keeps index files under 8 MiB; this many blobs keep the JSON well below that. */
export const MAX_BLOBS_PER_INDEX = 50_000;

/**
 * Every blob the repository's index files describe. A blob may sit in several packs (concurrent
 * backups, interrupted prunes); lookups return the first location that was added.
 */
export class MasterIndex {
  readonly #blobs = new Map<string, BlobLocation>();
  readonly #packs = new Map<Id, { type: BlobType; blobs: number }>();

  static key(type: BlobType, id: Id): string {
    return type === 'tree' ? `t${id}` : id;
  }

  get size(): number {
    return this.#blobs.size;
  }

  /** Forgets everything, before the index files are read again. */
  clear(): void {
    this.#blobs.clear();
    this.#packs.clear();
  }

  has(type: BlobType, id: Id): boolean {
    return this.#blobs.has(MasterIndex.key(type, id));
  }

  lookup(type: BlobType, id: Id): BlobLocation | undefined {
    return this.#blobs.get(MasterIndex.key(type, id));
  }

  hasPack(packId: Id): boolean {
    return this.#packs.has(packId);
  }

  packIds(): IterableIterator<Id> {
    return this.#packs.keys();
  }

  addPack(packId: Id, blobs: readonly PackedBlob[]): void {
    if (blobs.length === 0) return;
    this.#packs.set(packId, { type: blobs[0].type, blobs: blobs.length });
    for (const b of blobs) {
      const k = MasterIndex.key(b.type, b.id);
      if (!this.#blobs.has(k)) {
        this.#blobs.set(k, { packId, type: b.type, offset: b.offset, length: b.length, uncompressedLength: b.uncompressedLength });
      }
    }
  }

  addIndexJSON(json: IndexJSON, indexId: Id): void {
    if (!json || !Array.isArray(json.packs)) throw new CairnError('INTEGRITY', `index ${indexId} has no packs list`);
    for (const p of json.packs) {
      this.addPack(
        p.id,
        (p.blobs ?? []).map((b) => ({
          id: b.id,
          type: b.type,
          offset: b.offset,
          length: b.length,
          uncompressedLength: b.uncompressed_length,
        })),
      );
    }
  }

  /** Every blob, grouped by pack, for writing fresh index files or checking. */
  *entries(): IterableIterator<[string, BlobLocation]> {
    yield* this.#blobs.entries();
  }
}

/** Index files for the given packs, split so that none grows past MAX_BLOBS_PER_INDEX blobs. */
export function buildIndexFiles(packs: readonly { id: Id; blobs: readonly PackedBlob[] }[], supersedes: Id[] = []): IndexJSON[] {
  const files: IndexJSON[] = [];
  let current: IndexJSON = { packs: [] };
  let count = 0;
  for (const p of packs) {
    if (count > 0 && count + p.blobs.length > MAX_BLOBS_PER_INDEX) {
      files.push(current);
      current = { packs: [] };
      count = 0;
    }
    current.packs.push({
      id: p.id,
      blobs: p.blobs.map((b) => {
        const e: IndexJSON['packs'][number]['blobs'][number] = { id: b.id, type: b.type, offset: b.offset, length: b.length };
        if (b.uncompressedLength !== undefined) e.uncompressed_length = b.uncompressedLength;
        return e;
      }),
    });
    count += p.blobs.length;
  }
  if (current.packs.length > 0 || (files.length === 0 && supersedes.length > 0)) files.push(current);
  if (supersedes.length > 0) files[0] = { supersedes, packs: files[0].packs };
  return files;
}
