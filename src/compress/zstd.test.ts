import { randomBytes } from 'node:crypto';
import { CCtx, CParameter, compressBound, getFrameContentSize } from 'zstd-napi/binding.js';
import { describe, expect, it } from 'vitest';
import { ScratchCompressor, ScratchDecompressor, compress, compressStream, decompress } from './zstd.js';

describe('scratch decompressor', () => {
  it('decompresses into its reused buffer and checks the recorded size', () => {
    const d = new ScratchDecompressor();
    const a = Buffer.concat([randomBytes(1000), Buffer.alloc(50_000, 7)]);
    const b = Buffer.alloc(3000, 1);
    const outA = d.decompress(compress(a), a.length);
    expect(outA.equals(a)).toBe(true);
    const outB = d.decompress(new ScratchCompressor('auto').compress(b), b.length);
    expect(outB.equals(b)).toBe(true);
    expect(outB.buffer).toBe(outA.buffer);
    expect(() => d.decompress(compress(a), a.length - 1)).toThrow(expect.objectContaining({ code: 'INTEGRITY' }));
    expect(() => d.decompress(compress(a), a.length + 1)).toThrow(expect.objectContaining({ code: 'INTEGRITY' }));
    expect(() => d.decompress(randomBytes(100), 100)).toThrow(expect.objectContaining({ code: 'INTEGRITY' }));
  });
});

/** One-shot zstd level 3 with hashLog 16 and chainLog 13, as ScratchCompressor compresses inputs over 256 KiB in auto mode. */
function level3SmallTables(input: Buffer): Buffer {
  const cctx = new CCtx();
  cctx.setParameter(CParameter.compressionLevel, 3);
  cctx.setParameter(CParameter.hashLog, 16);
  cctx.setParameter(CParameter.chainLog, 13);
  const out = Buffer.alloc(compressBound(input.length));
  return out.subarray(0, cctx.compress2(out, input));
}

describe('scratch compressor', () => {
  it('makes the same frames as one-shot compression for inputs of every size class, interleaved', () => {
    const text = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: Math.ceil(n / 9) }, (_, i) => `${(i * seed) % 9973} `).join('').slice(0, n));
    const sizes = [0, 1, 4000, 16 * 1024, 16 * 1024 + 1, 100_000, 128 * 1024 + 1, 256 * 1024, 256 * 1024 + 1, 3_000_000];
    const inputs = [...sizes, ...sizes.slice().reverse()].map((n, i) => (i % 3 === 0 ? Buffer.concat([randomBytes(n >> 2), text(n - (n >> 2), i + 7)]) : text(n, i + 3)));
    const c = new ScratchCompressor('auto');
    const d = new ScratchDecompressor();
    for (let k = 0; k < 3; k++) {
      for (const input of inputs) {
        const frame = Buffer.from(c.compress(input));
        // A context reused across sizes makes the frame a new compressor makes.
        expect(frame.equals(new ScratchCompressor('auto').compress(input))).toBe(true);
        // Up to 256 KiB, zstd's own level 3; beyond, level 3 with smaller hash tables.
        if (input.length <= 256 * 1024) expect(frame.equals(compress(input))).toBe(true);
        else expect(frame.equals(level3SmallTables(input))).toBe(true);
        expect(d.decompress(frame, input.length).equals(input)).toBe(true);
      }
    }
  });
});

describe('scratch compressor on incompressible chunks', () => {
  it('in auto mode hands back a chunk whose samples zstd cannot shrink as it is, and compresses any chunk with a compressible sample', () => {
    const c = new ScratchCompressor('auto');
    const random = randomBytes(1 << 20);
    const same = c.compress(random);
    expect(same.equals(random)).toBe(true);
    expect(same.buffer).toBe(random.buffer);
    // Random up to the last quarter, text after it: the last sample finds the text.
    const text = Buffer.from('the quick brown fox jumps over the lazy dog. '.repeat(6000)).subarray(0, 256 * 1024);
    const mixed = Buffer.concat([random.subarray(0, 768 * 1024), text]);
    const frame = Buffer.from(c.compress(mixed));
    expect(frame.length).toBeLessThan(mixed.length - 200 * 1024);
    expect(frame.equals(level3SmallTables(mixed))).toBe(true);
    // Below the probe's size every chunk goes through zstd (a frame of raw blocks, a few bytes larger).
    expect(c.compress(random.subarray(0, 60_000)).length).toBeGreaterThan(60_000);
  });

  it('in max mode puts every chunk through zstd', () => {
    const random = randomBytes(1 << 20);
    expect(new ScratchCompressor('max').compress(random).length).toBeGreaterThan(random.length);
  });
});

describe('compressStream', () => {
  it('makes one frame of many pieces of a reused buffer, past its output pieces, that records their total size', () => {
    // Random hex compresses to about half: ~1 MiB of output, several streaming pieces.
    const parts = Array.from({ length: 64 }, (_, i) => Buffer.from(i === 5 ? '' : `${i}:é😀${randomBytes(16_384).toString('hex')}`));
    parts.splice(9, 0, Buffer.from(randomBytes(150_000).toString('hex')), Buffer.from('ü'.repeat(50_000)));
    const all = Buffer.concat(parts);
    const framed = compressStream(
      all.length,
      (sink) => {
        // One buffer for every piece, overwritten once the sink returns, as writeIndexJSON does.
        const reused = Buffer.alloc(400_000);
        for (const p of parts) {
          p.copy(reused);
          sink(reused.subarray(0, p.length));
          reused.fill(0);
        }
      },
      Buffer.of(9, 8),
    );
    expect([...framed.subarray(0, 2)]).toEqual([9, 8]);
    const frame = framed.subarray(2);
    expect(getFrameContentSize(frame)).toBe(all.length);
    expect(frame.length).toBeGreaterThan(512 * 1024);
    expect(frame.length).toBeLessThan(all.length);
    expect(decompress(frame).equals(all)).toBe(true);
    expect(new ScratchDecompressor().decompress(frame, all.length).equals(all)).toBe(true);
  });

  it('makes a valid empty frame of no pieces, and refuses pieces that do not add up to the size', () => {
    const frame = compressStream(0, () => undefined, Buffer.alloc(0));
    expect(getFrameContentSize(frame)).toBe(0);
    expect(decompress(frame).length).toBe(0);
    expect(() => compressStream(10, (sink) => sink(Buffer.alloc(9)), Buffer.alloc(0))).toThrow();
    expect(() => compressStream(10, (sink) => sink(Buffer.alloc(11)), Buffer.alloc(0))).toThrow();
  });
});

describe('levels by content', () => {
  it('compresses index-shaped JSON smaller as json than as file data, and both round-trip', () => {
    const blobs = Array.from({ length: 4000 }, (_, i) => `{"id":"${randomBytes(32).toString('hex')}","type":"data","offset":${i * 4096},"length":${4000 + (i % 97)},"uncompressed_length":${8000 + i}}`);
    const json = Buffer.from(`{"packs":[{"id":"${randomBytes(32).toString('hex')}","blobs":[${blobs.join(',')}]}]}`);
    const asJson = compress(json, 'auto', 'json');
    const asData = compress(json, 'auto', 'data');
    expect(asJson.length).toBeLessThan(asData.length);
    expect(decompress(asJson, json.length).equals(json)).toBe(true);
    expect(decompress(asData, json.length).equals(json)).toBe(true);
  });
});
