import { createHash } from 'node:crypto';
import { gearScan, scannedHash } from './gear-scan.js';
import { polynomialToHex } from './polynomial.js';

/** Smallest chunk the chunker emits, except for the final chunk of a stream. Same as restic. */
export const MIN_CHUNK = 512 * 1024;
/** Target mean chunk size (the measured mean on random data is about 1.05 MiB). */
export const AVG_CHUNK = 1024 * 1024;
/** Largest chunk; reached only by data without cut points, such as zero-filled (sparse) regions. Same as restic. */
export const MAX_CHUNK = 8 * 1024 * 1024;

/**
 * With h = (h << 1) + gear[byte] in 32 bits, a byte is shifted out after 32 steps, so the hash
 * depends only on the last 32 bytes. Hashing exactly that many bytes before the first eligible cut
 * makes boundaries a function of content alone, whatever the state left by earlier bytes.
 */
const WINDOW = 32;

/*
 * FastCDC normalized chunking (level 2) over the 512 KiB between MIN and AVG: a 21-bit mask makes
 * early cuts rare, a 17-bit mask after AVG makes late cuts come quickly, which narrows the size
 * distribution around AVG. The masks test the high bits because those mix the whole window.
 */
const MASK_STRICT = 0xfffff800 | 0;
const MASK_LOOSE = 0xffff8000 | 0;

/**
 * The gear table is secret-dependent, like restic's Rabin polynomial, so an attacker who can plant
 * data cannot predict boundaries and infer file contents from chunk sizes. SHA-256 in counter mode
 * over the polynomial's hex yields 32 blocks of 8 words. Signed entries keep the hot loop in int32
 * arithmetic, which V8 runs measurably faster than with a Uint32Array.
 */
function gearTable(polynomial: bigint): Int32Array {
  const key = polynomialToHex(polynomial);
  const table = new Int32Array(256);
  for (let block = 0; block < 32; block++) {
    const digest = createHash('sha256').update(`cairn/chunker/gear/v1\0${key}\0${block}`).digest();
    for (let j = 0; j < 8; j++) table[block * 8 + j] = digest.readInt32BE(j * 4);
  }
  // A run of one byte value c settles at h = -gear[c] (the sum of gear[c] << k for k < 32). If
  // that matched a mask, long runs such as zero-filled regions would cut as soon as the mask
  // applies (at MIN or just past AVG) and give many small identical chunks. Flipping the top bit
  // of gear[c] flips the top bit of -gear[c], so such runs reach MAX instead.
  for (let c = 0; c < 256; c++) {
    if ((-table[c] & MASK_LOOSE) === 0) table[c] ^= 0x80000000;
  }
  return table;
}

/**
 * Content-defined chunker (FastCDC with a gear hash keyed by the repository's chunker polynomial).
 * One instance chunks one stream at a time; call reset() between files.
 */
export class Chunker {
  private readonly gear: Int32Array;
  /** Bytes of the current chunk seen so far, across push() calls. */
  private pos = 0;
  private hash = 0;

  /** Throws BAD_INPUT unless `polynomial` is a valid restic chunker polynomial. */
  constructor(polynomial: bigint) {
    this.gear = gearTable(polynomial);
  }

  /** Start a new stream (a new file). */
  reset(): void {
    this.pos = 0;
    this.hash = 0;
  }

  /**
   * Scans the next bytes of the current stream. Returns the offsets within `data` (exclusive end positions, ascending)
   * at which a chunk ends. Bytes after the last returned offset belong to a chunk that continues into the next call.
   * The caller keeps the bytes; the chunker keeps only its rolling state.
   */
  push(data: Uint8Array): number[] {
    const gear = this.gear;
    const n = data.length;
    const cuts: number[] = [];
    let h = this.hash;
    let pos = this.pos;
    let i = 0;
    while (i < n) {
      // Where the current chunk began, relative to data; negative if it began in an earlier call.
      const start = i - pos;
      let cut = false;
      if (pos < MIN_CHUNK - WINDOW) {
        i = Math.min(n, start + MIN_CHUNK - WINDOW);
      } else if (pos < MIN_CHUNK - 1) {
        const end = Math.min(n, start + MIN_CHUNK - 1);
        for (; i < end; i++) h = ((h << 1) + gear[data[i]]) | 0;
      } else if (pos < AVG_CHUNK) {
        const end = Math.min(n, start + AVG_CHUNK);
        i = gearScan(gear, data, i, end, h, MASK_STRICT);
        h = scannedHash;
        if (i < end) {
          i++;
          cut = true;
        }
      } else {
        const end = Math.min(n, start + MAX_CHUNK);
        i = gearScan(gear, data, i, end, h, MASK_LOOSE);
        h = scannedHash;
        if (i < end) {
          i++;
          cut = true;
        } else {
          cut = i - start === MAX_CHUNK;
        }
      }
      if (cut) {
        cuts.push(i);
        pos = 0;
      } else {
        pos = i - start;
      }
    }
    this.hash = h;
    this.pos = pos;
    return cuts;
  }
}

/**
 * Chunk lengths for one whole buffer, in order; the last chunk is whatever remains after the last
 * cut point. An empty buffer has no chunks.
 */
export function chunkBuffer(polynomial: bigint, data: Uint8Array): number[] {
  const lengths: number[] = [];
  let prev = 0;
  for (const cut of new Chunker(polynomial).push(data)) {
    lengths.push(cut - prev);
    prev = cut;
  }
  if (prev < data.length) lengths.push(data.length - prev);
  return lengths;
}
