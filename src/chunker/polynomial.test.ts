import { describe, expect, it } from 'vitest';
import { CairnError } from '../errors.js';
import { isIrreducible, polynomialFromHex, polynomialToHex, randomPolynomial } from './polynomial.js';

// Reference arithmetic kept deliberately naive and separate from the implementation under test.
function degree(p: bigint): number {
  return p === 0n ? -1 : p.toString(2).length - 1;
}

function clmul(a: bigint, b: bigint): bigint {
  let r = 0n;
  for (let i = 0n; b >> i; i++) if ((b >> i) & 1n) r ^= a << i;
  return r;
}

function rem(a: bigint, m: bigint): bigint {
  while (degree(a) >= degree(m)) a ^= m << BigInt(degree(a) - degree(m));
  return a;
}

function gcd(a: bigint, b: bigint): bigint {
  while (b) [a, b] = [b, rem(a, b)];
  return a;
}

/** Rabin's test for prime degree n: x^(2^n) = x (mod p) and gcd(x^2 - x, p) = 1. */
function rabinIrreducible53(p: bigint): boolean {
  let t = 2n;
  for (let i = 0; i < 53; i++) t = rem(clmul(t, t), p);
  return t === 2n && gcd(p, 0b110n) === 1n;
}

/** Trial division by every polynomial of degree 1..deg(p)/2. */
function bruteIrreducible(p: bigint): boolean {
  if (degree(p) < 1) return false;
  for (let d = 1n; degree(d) <= degree(p) >> 1; d++) {
    if (degree(d) >= 1 && rem(p, d) === 0n) return false;
  }
  return true;
}

function random53(): bigint {
  let v = 0n;
  for (let i = 0; i < 4; i++) v = (v << 16n) | BigInt(Math.floor(Math.random() * 65536));
  return (v & ((1n << 53n) - 1n)) | (1n << 53n) | 1n;
}

function expectBadInput(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).code).toBe('BAD_INPUT');
    return;
  }
  expect.fail('expected BAD_INPUT');
}

describe('isIrreducible', () => {
  it('agrees with restic chunker test vectors', () => {
    const irreducible = [0x3da3358b4dc173n, 0x2482734cacca49n];
    const reducible = [
      0x38f1e565e288dfn, 0x30a8295b9d5c91n, 0x255f4350b962cbn, 0x267f776110a235n, 0x2f4dae10d41227n,
      0x312daf4b284899n, 0x29dfb6553d01d1n, 0x3548245eb26257n, 0x3199e7ef4211b3n, 0x362f39017dae8bn,
    ];
    for (const p of irreducible) expect(isIrreducible(p), p.toString(16)).toBe(true);
    for (const p of reducible) expect(isIrreducible(p), p.toString(16)).toBe(false);
  });

  it('confirms the restic example polynomial independently', () => {
    expect(rabinIrreducible53(0x3da3358b4dc173n)).toBe(true);
    expect(rabinIrreducible53(0x38f1e565e288dfn)).toBe(false);
  });

  it("matches Rabin's test on random degree-53 candidates", () => {
    let irreducibleSeen = 0;
    for (let i = 0; i < 300; i++) {
      const p = random53();
      const expected = rabinIrreducible53(p);
      expect(isIrreducible(p), p.toString(16)).toBe(expected);
      if (expected) irreducibleSeen++;
    }
    expect(irreducibleSeen).toBeGreaterThan(0);
  });

  it('counts irreducible polynomials of degree 1..12 as Gauss predicts, agreeing with trial division', () => {
    const gauss = [2, 1, 2, 3, 6, 9, 18, 30, 56, 99, 186, 335];
    for (let n = 1; n <= 12; n++) {
      let count = 0;
      for (let p = 1n << BigInt(n); p < 1n << BigInt(n + 1); p++) {
        const irr = isIrreducible(p);
        if (n <= 8) expect(irr, p.toString(2)).toBe(bruteIrreducible(p));
        if (irr) count++;
      }
      expect(count, `degree ${n}`).toBe(gauss[n - 1]);
    }
  });

  it('rejects products of smaller polynomials', () => {
    const small = [0b11n, 0b111n, 0b1011n, 0b10011n];
    for (let i = 0; i < 50; i++) {
      const s = small[i % small.length];
      const q = random53() >> BigInt(degree(s));
      const p = clmul(s, q);
      expect(degree(p)).toBe(53);
      expect(isIrreducible(p), p.toString(16)).toBe(false);
    }
    const q = random53() >> 27n;
    expect(isIrreducible(clmul(q, q))).toBe(false);
  });

  it('treats constants and non-polynomials as not irreducible', () => {
    for (const p of [-5n, 0n, 1n]) expect(isIrreducible(p)).toBe(false);
    expect(isIrreducible(0b10n)).toBe(true);
    expect(isIrreducible(0b11n)).toBe(true);
  });
});

describe('randomPolynomial', () => {
  it('returns distinct irreducible polynomials of degree 53 quickly', () => {
    const started = performance.now();
    const seen = new Set<bigint>();
    for (let i = 0; i < 20; i++) {
      const p = randomPolynomial();
      expect(degree(p)).toBe(53);
      expect(p & 1n).toBe(1n);
      expect(rabinIrreducible53(p)).toBe(true);
      seen.add(p);
    }
    expect(seen.size).toBe(20);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('hex form', () => {
  it('writes lowercase hex without prefix, as in a restic config', () => {
    expect(polynomialToHex(0x3da3358b4dc173n)).toBe('3da3358b4dc173');
    expect(polynomialFromHex('25b468838dcb75')).toBe(0x25b468838dcb75n);
    const p = randomPolynomial();
    expect(polynomialFromHex(polynomialToHex(p))).toBe(p);
    expect(polynomialToHex(p)).toMatch(/^[0-9a-f]{14}$/);
  });

  it('reads what Go would parse: upper case and leading zeros', () => {
    expect(polynomialFromHex('3DA3358B4DC173')).toBe(0x3da3358b4dc173n);
    expect(polynomialFromHex('003da3358b4dc173')).toBe(0x3da3358b4dc173n);
  });

  it('rejects malformed, wrong-degree and reducible values', () => {
    for (const s of ['', '0x3da3358b4dc173', ' 3da3358b4dc173', '3da3358b4dc17g', '-3da3358b4dc173', '00003da3358b4dc173']) {
      expectBadInput(() => polynomialFromHex(s));
    }
    expectBadInput(() => polynomialFromHex('0'));
    expectBadInput(() => polynomialFromHex('3')); // irreducible, but degree 1
    expectBadInput(() => polynomialFromHex('7da3358b4dc173')); // degree 54
    expectBadInput(() => polynomialFromHex('38f1e565e288df')); // degree 53, reducible
    expectBadInput(() => polynomialToHex(0x38f1e565e288dfn));
    expectBadInput(() => polynomialToHex(-0x3da3358b4dc173n));
  });
});
