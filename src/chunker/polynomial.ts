import { randomBytes } from 'node:crypto';
import { CairnError } from '../errors.js';

/**
 * Polynomials over GF(2) as bit vectors in a bigint: bit i is the coefficient of x^i.
 * restic stores its chunker polynomial as a uint64 of degree 53 (the largest prime below 64 - 8)
 * and refuses to open a repository whose polynomial is not irreducible.
 */
const DEGREE = 53;
const X = 2n;

function degree(p: bigint): number {
  return p === 0n ? -1 : p.toString(2).length - 1;
}

function mod(a: bigint, m: bigint): bigint {
  const dm = degree(m);
  for (let d = degree(a); d >= dm; d = degree(a)) a ^= m << BigInt(d - dm);
  return a;
}

/** Shift-and-add multiplication, reducing as it goes so no intermediate exceeds deg(m) bits. */
function mulMod(a: bigint, b: bigint, m: bigint): bigint {
  const top = 1n << BigInt(degree(m));
  a = mod(a, m);
  let r = 0n;
  for (; b !== 0n; b >>= 1n) {
    if (b & 1n) r ^= a;
    a <<= 1n;
    if (a & top) a ^= m;
  }
  return r;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, mod(a, b)];
  return a;
}

/**
 * Ben-Or's test: p of degree n is irreducible iff gcd(p, x^(2^i) - x) = 1 for every i <= n/2.
 * A reducible p has a factor of degree <= n/2, which divides x^(2^i) - x for i equal to that degree,
 * so random reducible candidates (most of which have a small factor) are rejected after a few rounds.
 */
export function isIrreducible(p: bigint): boolean {
  if (p <= 1n) return false;
  const n = degree(p);
  let x2i = X;
  for (let i = 1; i <= n >> 1; i++) {
    x2i = mulMod(x2i, x2i, p);
    if (gcd(p, x2i ^ X) !== 1n) return false;
  }
  return true;
}

/** Throws BAD_INPUT unless `p` is what restic accepts as `chunker_polynomial`: degree 53 and irreducible. */
export function assertPolynomial(p: bigint): void {
  if (p < 0n || degree(p) !== DEGREE) {
    throw new CairnError('BAD_INPUT', `chunker polynomial must have degree ${DEGREE}, got ${p < 0n ? 'a negative value' : degree(p)}`);
  }
  if (!isIrreducible(p)) {
    throw new CairnError('BAD_INPUT', `chunker polynomial ${p.toString(16)} is not irreducible; the repository config is corrupt`);
  }
}

/**
 * A fresh random irreducible polynomial of degree 53, chosen the way restic does: 51 random bits,
 * with x^53 forced (degree) and x^0 forced (otherwise x divides it). About 7.5% of such candidates
 * are irreducible, so a few dozen tries are typical.
 */
export function randomPolynomial(): bigint {
  const low = (1n << BigInt(DEGREE)) - 1n;
  for (;;) {
    const p = (randomBytes(8).readBigUInt64LE(0) & low) | (1n << BigInt(DEGREE)) | 1n;
    if (isIrreducible(p)) return p;
  }
}

/** The config-file form of a polynomial: lowercase hex without prefix, as restic writes it. */
export function polynomialToHex(p: bigint): string {
  assertPolynomial(p);
  return p.toString(16);
}

/**
 * Parses `chunker_polynomial` from a repository config. Accepts any hex that fits restic's uint64
 * (Go's ParseUint also takes upper case and leading zeros), then checks degree and irreducibility.
 */
export function polynomialFromHex(s: string): bigint {
  if (!/^[0-9a-fA-F]{1,16}$/.test(s)) {
    throw new CairnError('BAD_INPUT', `chunker polynomial must be 1 to 16 hex digits without prefix, got ${JSON.stringify(s.slice(0, 40))}`);
  }
  const p = BigInt('0x' + s);
  assertPolynomial(p);
  return p;
}
