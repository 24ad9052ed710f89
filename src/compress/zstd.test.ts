import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ScratchCompressor, ScratchDecompressor, compress } from './zstd.js';

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
