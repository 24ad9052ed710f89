import { describe, expect, it } from 'vitest';
import { parseGoDuration } from './context.js';

describe('parseGoDuration', () => {
  it("reads Go's durations, as restic's --retry-lock takes them", () => {
    expect(parseGoDuration('30s', 'x')).toBe(30_000);
    expect(parseGoDuration('5m', 'x')).toBe(300_000);
    expect(parseGoDuration('1h30m', 'x')).toBe(5_400_000);
    expect(parseGoDuration('1.5h', 'x')).toBe(5_400_000);
    expect(parseGoDuration('500ms', 'x')).toBe(500);
    expect(parseGoDuration('2m3s4ms', 'x')).toBe(123_004);
    expect(parseGoDuration('0s', 'x')).toBe(0);
    for (const bad of ['', '5', '5 m', '5d', 'm', '-1s', '1h30']) expect(() => parseGoDuration(bad, '--retry-lock'), bad).toThrow(/invalid --retry-lock/);
  });
});
