import { describe, expect, it } from 'vitest';
import type { BlobType } from '../repository/pack.js';
import { parseMaxUnused, planRepack, type PackInfo } from './prune.js';

describe('prune --max-unused', () => {
  it('takes a percentage, a size (zero included) or unlimited, and names every form when it gets none', () => {
    expect(parseMaxUnused('5%')).toEqual({ percent: 5 });
    expect(parseMaxUnused('0%')).toEqual({ percent: 0 });
    expect(parseMaxUnused('0')).toEqual({ bytes: 0 });
    expect(parseMaxUnused('10M')).toEqual({ bytes: 10 * 1024 * 1024 });
    expect(parseMaxUnused('unlimited')).toBe('unlimited');
    for (const bad of ['lots', '-1', '10X', '']) expect(() => parseMaxUnused(bad)).toThrow(/use a percentage \(5%\), a size \(10M\) or unlimited/);
  });
});

/** A pack of `used` and `unused` blobs of `type` (sizes in KiB), named `id`. */
function pack(id: string, kind: BlobType | 'mixed', usedKiB: number[], unusedKiB: number[] = []): PackInfo {
  const sum = (kib: number[]): number => kib.reduce((s, k) => s + k * 1024, 0);
  return { id, kind, blobs: usedKiB.length + unusedKiB.length, usedBlobs: usedKiB.length, usedBytes: sum(usedKiB), unusedBytes: sum(unusedKiB) };
}

const ids = (r: { repack: PackInfo[] }): string[] => r.repack.map((p) => p.id);
const MiB = 1024 * 1024;

describe('which packs prune repacks (as restic 0.14)', () => {
  it('repacks partly used data packs, most unused first, only while more than the limit stays unused', () => {
    const packs = [pack('a', 'data', [6000], [1000]), pack('b', 'data', [3000], [3000]), pack('c', 'data', [7000], [])];
    expect(ids(planRepack(packs, 2 * MiB, Infinity))).toEqual(['b']);
    expect(planRepack(packs, 2 * MiB, Infinity).unusedLeft).toBe(1000 * 1024);
    expect(ids(planRepack(packs, 4000 * 1024, Infinity))).toEqual([]);
    expect(ids(planRepack(packs, 0, Infinity))).toEqual(['b', 'a']);
    expect(ids(planRepack(packs, Infinity, Infinity))).toEqual([]);
  });

  it('always repacks tree packs with unused blobs and packs that mix trees and data, first', () => {
    const packs = [pack('data', 'data', [5000], [3000]), pack('trees', 'tree', [300], [10]), pack('mixed', 'mixed', [400, 400])];
    expect(ids(planRepack(packs, Infinity, Infinity))).toEqual(['trees', 'mixed']);
    expect(ids(planRepack(packs, 0, Infinity))).toEqual(['trees', 'mixed', 'data']);
    // Fully used tree packs stay.
    expect(ids(planRepack([pack('t', 'tree', [4000])], 0, Infinity))).toEqual([]);
  });

  it('merges fully used small packs once there are ten, and leaves fewer alone', () => {
    const nine = Array.from({ length: 9 }, (_, i) => pack(`s${i}`, i % 3 ? 'data' : 'tree', [100]));
    const big = pack('big', 'data', [8000]);
    expect(ids(planRepack([...nine, big], Infinity, Infinity))).toEqual([]);
    const ten = [...nine, pack('s9', 'data', [200])];
    // Small tree packs come before small data packs.
    expect(ids(planRepack([...ten, big], Infinity, Infinity))).toEqual(['s0', 's3', 's6', 's1', 's2', 's4', 's5', 's7', 's8', 's9']);
  });

  it('repacks packs that must be compressed whatever they hold unused, within the maximum; with cacheableOnly no data pack', () => {
    const raw = { ...pack('raw', 'data', [7000]), mustCompress: true };
    const trees = { ...pack('trees', 'tree', [300]), mustCompress: true };
    const packs = [raw, trees, pack('done', 'data', [7000]), pack('b', 'data', [3000], [3000])];
    expect(ids(planRepack(packs, Infinity, Infinity))).toEqual(['trees', 'raw']);
    expect(ids(planRepack(packs, 0, Infinity))).toEqual(['trees', 'b', 'raw']);
    expect(ids(planRepack(packs, Infinity, 1 * MiB))).toEqual(['trees']);
    expect(ids(planRepack(packs, 0, Infinity, { cacheableOnly: true }))).toEqual(['trees']);
    expect(planRepack(packs, 0, Infinity, { cacheableOnly: true }).unusedLeft).toBe(3000 * 1024);
    // Ten small data packs are not merged either.
    const small = Array.from({ length: 10 }, (_, i) => pack(`s${i}`, 'data', [100]));
    expect(ids(planRepack(small, Infinity, Infinity, { cacheableOnly: true }))).toEqual([]);
    expect(ids(planRepack(small, Infinity, Infinity))).toHaveLength(10);
  });

  it('keeps a pack that would take the repacked total to the maximum', () => {
    const packs = [pack('t', 'tree', [100], [100]), pack('a', 'data', [4000], [4000]), pack('b', 'data', [100], [500])];
    expect(ids(planRepack(packs, 0, 1 * MiB))).toEqual(['t', 'b']);
    expect(ids(planRepack(packs, 0, 100 * 1024))).toEqual([]);
  });
});
