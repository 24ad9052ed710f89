import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../errors.js';
import { AVG_CHUNK, Chunker, MAX_CHUNK, MIN_CHUNK, chunkBuffer } from './chunker.js';

const POLY = 0x3da3358b4dc173n;
const OTHER_POLY = 0x2482734cacca49n;
const MiB = 1024 * 1024;

/** Seeded xorshift32 data, so a failure reproduces byte for byte. */
function pseudoRandom(size: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed | 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/** Seeded generator for test parameters (push sizes). */
function rng(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function cutsFromLengths(lengths: number[]): number[] {
  let end = 0;
  return lengths.map((len) => (end += len));
}

function pushAll(chunker: Chunker, data: Uint8Array, sizes: () => number): number[] {
  const cuts: number[] = [];
  for (let off = 0; off < data.length; ) {
    const len = Math.min(sizes(), data.length - off);
    for (const cut of chunker.push(data.subarray(off, off + len))) cuts.push(off + cut);
    off += len;
  }
  return cuts;
}

function chunkDigests(data: Uint8Array, lengths: number[]): string[] {
  let off = 0;
  return lengths.map((len) => {
    const digest = createHash('sha256').update(data.subarray(off, off + len)).digest('hex');
    off += len;
    return digest;
  });
}

const data64 = pseudoRandom(64 * MiB, 0x5eed);
const lengths64 = chunkBuffer(POLY, data64);

describe('chunkBuffer on random data', () => {
  it('covers the input with chunks between MIN and MAX, except the last', () => {
    expect(lengths64.reduce((a, b) => a + b, 0)).toBe(data64.length);
    for (const len of lengths64.slice(0, -1)) {
      expect(len).toBeGreaterThanOrEqual(MIN_CHUNK);
      expect(len).toBeLessThanOrEqual(MAX_CHUNK);
    }
    expect(lengths64.at(-1)).toBeGreaterThan(0);
    expect(lengths64.at(-1)).toBeLessThanOrEqual(MAX_CHUNK);
  });

  it('averages close to AVG_CHUNK', () => {
    const full = lengths64.slice(0, -1);
    const mean = full.reduce((a, b) => a + b, 0) / full.length;
    expect(mean).toBeGreaterThan(0.7 * MiB);
    expect(mean).toBeLessThan(1.5 * MiB);
    expect(AVG_CHUNK).toBe(MiB);
  });

  it('is deterministic, and a prefix of the stream has the same cut points', () => {
    const data = data64.subarray(0, 16 * MiB);
    const first = chunkBuffer(POLY, data);
    expect(chunkBuffer(POLY, data)).toEqual(first);
    expect(cutsFromLengths(first.slice(0, -1))).toEqual(cutsFromLengths(lengths64).filter((c) => c < 16 * MiB));
  });

  it('depends on the polynomial', () => {
    const other = chunkBuffer(OTHER_POLY, data64.subarray(0, 16 * MiB));
    const ours = cutsFromLengths(lengths64);
    const shared = cutsFromLengths(other.slice(0, -1)).filter((c) => ours.includes(c));
    expect(shared).toEqual([]);
  });
});

/**
 * The specification, written plainly: gear table from SHA-256 in counter mode over the polynomial's
 * hex (with the constant-run correction), hash every byte from the chunk start, cut at the first
 * length >= MIN whose hash has the top 21 bits clear (up to AVG) or the top 17 bits clear (after).
 * Changing any of this moves boundaries and so costs deduplication against existing repositories.
 */
function referenceChunkLengths(poly: bigint, data: Uint8Array): number[] {
  const gear: number[] = [];
  for (let block = 0; block < 32; block++) {
    const digest = createHash('sha256').update(`cairn/chunker/gear/v1\0${poly.toString(16)}\0${block}`).digest();
    for (let j = 0; j < 8; j++) gear.push(digest.readUInt32BE(j * 4));
  }
  const constantRunHash = (g: number) => (2 ** 32 - g) % 2 ** 32;
  for (let c = 0; c < 256; c++) if (constantRunHash(gear[c]) < 2 ** 15) gear[c] = (gear[c] + 2 ** 31) % 2 ** 32;

  const lengths: number[] = [];
  let start = 0;
  let h = 0;
  for (let i = 0; i < data.length; i++) {
    h = (h * 2 + gear[data[i]]) % 2 ** 32;
    const len = i + 1 - start;
    const topBits = len <= AVG_CHUNK ? 21 : 17;
    if ((len >= MIN_CHUNK && h < 2 ** (32 - topBits)) || len === MAX_CHUNK) {
      lengths.push(len);
      start = i + 1;
      h = 0;
    }
  }
  if (start < data.length) lengths.push(data.length - start);
  return lengths;
}

describe('reference implementation', () => {
  it('agrees with the fast chunker on random data', () => {
    const data = data64.subarray(0, 16 * MiB);
    expect(chunkBuffer(POLY, data)).toEqual(referenceChunkLengths(POLY, data));
  });

  it('agrees on noise interleaved with constant runs', () => {
    const data = new Uint8Array(2 * MAX_CHUNK);
    const noise = pseudoRandom(data.length, 99);
    for (let off = 0; off < data.length; off += 256 * 1024) {
      const kind = (off / (256 * 1024)) % 3;
      const block = data.subarray(off, off + 256 * 1024);
      if (kind === 1) block.set(noise.subarray(off, off + 256 * 1024));
      if (kind === 2) block.fill(off & 0xff);
    }
    const lengths = chunkBuffer(OTHER_POLY, data);
    expect(lengths).toEqual(referenceChunkLengths(OTHER_POLY, data));
    expect(lengths.some((len) => len < MAX_CHUNK)).toBe(true);
  });
});

describe('Chunker.push', () => {
  const data = data64.subarray(0, 32 * MiB);
  const whole = cutsFromLengths(chunkBuffer(POLY, data).slice(0, -1));

  it('finds the same cut points however the stream is split (1 byte .. 3 MiB)', () => {
    for (const seed of [1, 2, 3]) {
      const next = rng(seed);
      // Log-uniform sizes so that tiny pushes occur often, not just large ones.
      const sizes = () => Math.max(1, Math.floor(Math.exp(next() * Math.log(3 * MiB))));
      expect(pushAll(new Chunker(POLY), data, sizes), `seed ${seed}`).toEqual(whole);
    }
  });

  it('handles a stream fed one byte at a time across the first boundaries', () => {
    const prefix = data.subarray(0, whole[1] + 10);
    expect(pushAll(new Chunker(POLY), prefix, () => 1)).toEqual(whole.slice(0, 2));
  });

  it('reports a cut at the very end of a pushed buffer', () => {
    const chunker = new Chunker(POLY);
    expect(chunker.push(data.subarray(0, whole[0]))).toEqual([whole[0]]);
    expect(chunker.push(data.subarray(whole[0], whole[1]))).toEqual([whole[1] - whole[0]]);
  });

  it('starts afresh after reset()', () => {
    const chunker = new Chunker(POLY);
    chunker.push(data64.subarray(40 * MiB, 40 * MiB + 700 * 1024));
    chunker.reset();
    expect(pushAll(chunker, data, () => 4 * MiB)).toEqual(whole);
  });
});

describe('content-defined boundaries', () => {
  it('re-synchronise after an insertion near the start', () => {
    const original = data64.subarray(0, 32 * MiB);
    const edited = new Uint8Array(original.length + 100);
    edited.set(original.subarray(0, 1000));
    edited.set(pseudoRandom(100, 77), 1000);
    edited.set(original.subarray(1000), 1100);

    const before = new Set(chunkDigests(original, chunkBuffer(POLY, original)));
    const after = chunkDigests(edited, chunkBuffer(POLY, edited));
    const changed = after.filter((d) => !before.has(d));
    expect(after.length).toBeGreaterThan(20);
    expect(changed.length).toBeGreaterThanOrEqual(1);
    expect(changed.length).toBeLessThanOrEqual(2);
    expect(after.slice(2).every((d) => before.has(d))).toBe(true);
  });
});

describe('edge cases', () => {
  it('cuts all-zero input (a sparse file) at MAX', () => {
    for (const poly of [POLY, OTHER_POLY]) {
      expect(chunkBuffer(poly, new Uint8Array(2 * MAX_CHUNK + 12345))).toEqual([MAX_CHUNK, MAX_CHUNK, 12345]);
    }
  });

  it('never cuts inside a run of any single byte value', () => {
    const run = new Uint8Array(MIN_CHUNK + AVG_CHUNK);
    const chunker = new Chunker(POLY);
    for (let c = 0; c < 256; c++) {
      run.fill(c);
      chunker.reset();
      expect(chunker.push(run), `byte ${c}`).toEqual([]);
    }
  });

  it('cuts runs at MAX even where the derived gear table needed correcting', () => {
    // Found by search: without the correction, a run of byte 183 would match both masks under the
    // first polynomial, and a run of byte 125 the loose mask under the second.
    const cases: [bigint, number][] = [
      [0x382c4a35bf4a35n, 183],
      [0x25a9b50d60f06fn, 125],
    ];
    for (const [poly, c] of cases) {
      expect(chunkBuffer(poly, new Uint8Array(MAX_CHUNK + 1).fill(c))).toEqual([MAX_CHUNK, 1]);
    }
  });

  it('gives one chunk for a file smaller than MIN, and none for an empty one', () => {
    expect(chunkBuffer(POLY, data64.subarray(0, MIN_CHUNK - 1))).toEqual([MIN_CHUNK - 1]);
    expect(chunkBuffer(POLY, data64.subarray(0, 1))).toEqual([1]);
    expect(chunkBuffer(POLY, new Uint8Array(0))).toEqual([]);
  });

  it('rejects a polynomial restic would refuse', () => {
    for (const bad of [0n, 0x38f1e565e288dfn, 0x3n]) {
      expect(() => new Chunker(bad)).toThrow(CairnError);
    }
  });
});
