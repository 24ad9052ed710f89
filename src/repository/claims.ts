/**
 * Which new blobs a backup's workers have taken on: a table in shared memory where the first worker
 * to hash a chunk claims its id, so that a second worker hashing the same content (two copies of a
 * file read at once) leaves it to the first rather than storing it again. Until the first worker's
 * pack is saved the index does not know the blob, and each worker storing its own copy cost the
 * project's node_modules 4.9 MB of duplicates in 53 MB (restic stores none).
 *
 * A claim must only ever stand for a blob that will be saved: the pool fails as a whole when a
 * worker's pack cannot be written (see WorkerPool), and a claim lasts for one backup's pool.
 *
 * The table is small and lock-free. Each slot holds a state word (its epoch and whether its id is
 * written) and the id's eight words. Once half the slots have been claimed the epoch moves on and
 * every slot counts as empty again: by then the packs of most of those blobs are in the index, and
 * one that is not yet may be stored twice, as it would have been without the table. Every race
 * ends that way too (a slot reused while it is read, a crowded table, a writer that stalls): at
 * worst a duplicate, never a blob skipped that nobody stores.
 */
const SLOTS = 1 << 15;
const SLOT_WORDS = 9;
const HEADER_WORDS = 16;
const EPOCH = 0;
const COUNT = 1;
/** Claims per epoch: half the table, so that probes stay short. */
const EPOCH_CLAIMS = SLOTS / 2;
const MAX_PROBES = 64;
const MAX_SPINS = 1000;
const READY = 1;
/** Epochs fit the state word's 31 bits; past the last one (2^30 epochs of 16,384 claims) nothing is claimed. */
const LAST_EPOCH = 0x3fff_ffff;

export function newClaimTable(): SharedArrayBuffer {
  const sab = new SharedArrayBuffer((HEADER_WORDS + SLOTS * SLOT_WORDS) * 4);
  // Epoch 0 is what empty slots hold.
  new Int32Array(sab)[EPOCH] = 1;
  return sab;
}

export class BlobClaims {
  readonly #t: Int32Array;
  readonly #idBytes = Buffer.alloc(32);
  readonly #id = new Int32Array(this.#idBytes.buffer, this.#idBytes.byteOffset, 8);

  constructor(table: SharedArrayBuffer) {
    this.#t = new Int32Array(table);
  }

  /**
   * True when the caller has claimed `id` (hex) now and must store the blob; false when another
   * claim of it stands in this epoch (including the caller's own).
   */
  claim(id: string): boolean {
    const t = this.#t;
    const w = this.#id;
    this.#idBytes.write(id, 'hex');
    const epoch = Atomics.load(t, EPOCH);
    if (epoch >= LAST_EPOCH) return true;
    const mask = SLOTS - 1;
    let i = w[1] & mask;
    for (let probes = 0; probes < MAX_PROBES; probes++) {
      const base = HEADER_WORDS + i * SLOT_WORDS;
      let s = Atomics.load(t, base);
      if (s >>> 1 !== epoch) {
        // Empty (an older epoch): take it, write the id, then mark it ready.
        if (Atomics.compareExchange(t, base, s, epoch << 1) !== s) continue;
        for (let k = 0; k < 8; k++) t[base + 1 + k] = w[k];
        Atomics.store(t, base, (epoch << 1) | READY);
        if (Atomics.add(t, COUNT, 1) + 1 === EPOCH_CLAIMS) this.#nextEpoch(epoch);
        return true;
      }
      for (let spins = 0; (s & READY) === 0 && s >>> 1 === epoch && spins < MAX_SPINS; spins++) s = Atomics.load(t, base);
      if (s >>> 1 !== epoch) continue;
      if ((s & READY) !== 0) {
        let k = 0;
        while (k < 8 && t[base + 1 + k] === w[k]) k++;
        // The slot must not have been taken again while its id was read.
        if (k === 8 && Atomics.load(t, base) === s) return false;
      }
      i = (i + 1) & mask;
    }
    return true;
  }

  #nextEpoch(from: number): void {
    if (Atomics.compareExchange(this.#t, EPOCH, from, from + 1) === from) Atomics.store(this.#t, COUNT, 0);
  }
}
