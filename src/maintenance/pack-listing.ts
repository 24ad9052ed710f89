import { CairnError } from '../errors.js';
import type { Id } from '../repository/id.js';
import { ROW_LENGTH, ROW_OFFSET, ROW_PACK, ROW_TREE, ROW_ULEN, ROW_WORDS, writeRowId, type ScannedIndex } from '../repository/index-scan.js';
import type { MasterIndex } from '../repository/master-index.js';
import type { BlobType, PackedBlob } from '../repository/pack.js';
import { doubled } from '../util/typed.js';

/** Per listed blob: its pack's number (with the tree bit), offset, length, uncompressed length plus one (0: not compressed). */
const WORDS = 4;
const TREE_BIT = 0x8000_0000;

/**
 * Every (pack, blob) pair the index files list, as prune needs them: in typed arrays, about 24
 * bytes a pair once resolved against the index's blob table (which holds each id once), with no
 * string or object per blob, so that a repository of millions of blobs prunes in memory close to
 * its index's. A pack listed more than once (by the index files an interrupted prune leaves)
 * has each of its blobs once.
 *
 * Fill it with `add` as index files load, then `resolve` once they all have.
 */
export class PackListing {
  readonly packIds: Id[] = [];
  readonly #packNumbers = new Map<Id, number>();
  #count = 0;
  #words = new Uint32Array(1024 * WORDS);
  /** The blobs' ids, until `resolve` swaps them for slots in the index's table. */
  #ids: Buffer | null = Buffer.allocUnsafe(1024 * 32);
  #slots = new Uint32Array(0);
  /** Pack p's blobs, each once, by offset: #order[#start[p]] up to #order[#start[p + 1]]. */
  #order = new Uint32Array(0);
  #start = new Uint32Array(1);

  get size(): number {
    return this.#count;
  }

  has(packId: Id): boolean {
    return this.#packNumbers.has(packId);
  }

  packNumber(id: Id): number {
    const n = this.#packNumbers.get(id);
    if (n === undefined) throw new CairnError('INTERNAL', `pack ${id} is not listed`);
    return n;
  }

  /** Adds what one index file lists (MasterIndex.addIndexText has checked its ids, offsets and lengths). */
  addListed(listed: ScannedIndex): void {
    if (!this.#ids) throw new CairnError('INTERNAL', 'PackListing.addListed after resolve');
    const numbers = listed.packs.map((packId) => {
      let p = this.#packNumbers.get(packId);
      if (p === undefined) {
        p = this.packIds.length;
        this.packIds.push(packId);
        this.#packNumbers.set(packId, p);
      }
      return p;
    });
    const { rows } = listed;
    for (let r = 0; r < listed.count * ROW_WORDS; r += ROW_WORDS) {
      if (this.#count * WORDS === this.#words.length) this.#grow();
      const w = this.#count * WORDS;
      this.#words[w] = (numbers[rows[r + ROW_PACK]] | (rows[r + ROW_TREE] === 1 ? TREE_BIT : 0)) >>> 0;
      this.#words[w + 1] = rows[r + ROW_OFFSET];
      this.#words[w + 2] = rows[r + ROW_LENGTH];
      this.#words[w + 3] = rows[r + ROW_ULEN];
      writeRowId(rows, r, this.#ids!, this.#count * 32);
      this.#count++;
    }
  }

  /** Swaps each blob's id for its slot in `index`, and orders each pack's blobs by offset, each once. */
  resolve(index: MasterIndex): void {
    const ids = this.#ids;
    if (!ids) return;
    const n = this.#count;
    this.#slots = new Uint32Array(n);
    for (let e = 0; e < n; e++) {
      const s = index.slot(this.#type(e), ids.subarray(e * 32, e * 32 + 32));
      if (s < 0) throw new CairnError('INTERNAL', `blob ${ids.toString('hex', e * 32, e * 32 + 32)} is listed but not indexed`);
      this.#slots[e] = s;
    }
    this.#ids = null;

    const packs = this.packIds.length;
    const start = new Uint32Array(packs + 1);
    for (let e = 0; e < n; e++) start[this.#pack(e) + 1]++;
    for (let p = 0; p < packs; p++) start[p + 1] += start[p];
    const order = new Uint32Array(n);
    const fill = start.slice(0, packs);
    for (let e = 0; e < n; e++) order[fill[this.#pack(e)]++] = e;
    // Within a pack by offset, and a blob listed twice at the same offset kept once (the first).
    let w = 0;
    for (let p = 0; p < packs; p++) {
      const from = start[p];
      const to = start[p + 1];
      order.subarray(from, to).sort((a, b) => this.offset(a) - this.offset(b) || a - b);
      start[p] = w;
      for (let i = from; i < to; i++) {
        const e = order[i];
        if (i > from && this.offset(e) === this.offset(order[i - 1])) continue;
        order[w++] = e;
      }
    }
    start[packs] = w;
    this.#order = order.subarray(0, w);
    this.#start = start;
  }

  /** Pack p's blobs (their numbers), each once, by offset. */
  blobsOf(p: number): Uint32Array {
    return this.#order.subarray(this.#start[p], this.#start[p + 1]);
  }

  slot(e: number): number {
    return this.#slots[e];
  }

  offset(e: number): number {
    return this.#words[e * WORDS + 1];
  }

  length(e: number): number {
    return this.#words[e * WORDS + 2];
  }

  /** Whether blob e is stored compressed (the index lists its uncompressed length). */
  compressed(e: number): boolean {
    return this.#words[e * WORDS + 3] !== 0;
  }

  /** Blob e as the index files list it; the id comes from the index's table. */
  blob(e: number, index: MasterIndex): PackedBlob {
    const ulen = this.#words[e * WORDS + 3];
    return { id: index.slotId(this.#slots[e]), type: this.#type(e), offset: this.offset(e), length: this.length(e), uncompressedLength: ulen === 0 ? undefined : ulen - 1 };
  }

  /**
   * Pack p as saveIndex takes it. Its blobs are made each time they are read, and are garbage
   * soon after: the index files of a large repository are written a pack at a time.
   */
  forIndex(p: number, index: MasterIndex): { id: Id; readonly blobs: PackedBlob[] } {
    const blobs = (): PackedBlob[] => Array.from(this.blobsOf(p), (e) => this.blob(e, index));
    return {
      id: this.packIds[p],
      get blobs() {
        return blobs();
      },
    };
  }

  #pack(e: number): number {
    return this.#words[e * WORDS] & ~TREE_BIT;
  }

  #type(e: number): BlobType {
    return this.#words[e * WORDS] & TREE_BIT ? 'tree' : 'data';
  }

  #grow(): void {
    this.#words = doubled(this.#words);
    const ids = Buffer.allocUnsafe(this.#ids!.length * 2);
    this.#ids!.copy(ids);
    this.#ids = ids;
  }
}
