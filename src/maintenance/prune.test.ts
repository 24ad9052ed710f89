import { describe, expect, it } from 'vitest';
import { parseMaxUnused } from './prune.js';

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
