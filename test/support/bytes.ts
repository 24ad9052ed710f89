/**
 * Runs in every test file (vitest setupFiles): toEqual and toStrictEqual compare two byte arrays
 * (Buffers, Uint8Arrays) with one memcmp. vitest's own comparison walks them element by element:
 * 9 s for two equal 2 MiB Buffers. Equal means the same type, length and bytes, as vitest's
 * element-wise comparison would find; anything else is left to vitest.
 */
import { expect } from 'vitest';

function sameBytes(a: unknown, b: unknown): boolean | undefined {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) return undefined;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  return Buffer.compare(a, b) === 0;
}

expect.addEqualityTesters([sameBytes]);
