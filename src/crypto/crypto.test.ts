import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../errors.js';
import { CRYPTO_OVERHEAD, IV_SIZE, Key, MAC_SIZE } from './crypto.js';
import { poly1305 } from './poly1305.js';

function expectIntegrityError(fn: () => unknown): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CairnError);
  expect((caught as CairnError).code).toBe('INTEGRITY');
  expect((caught as CairnError).message).toMatch(/^ciphertext verification failed/);
}

function expectBadInput(fn: () => unknown): void {
  expect(fn).toThrow(CairnError);
  try {
    fn();
  } catch (err) {
    expect((err as CairnError).code).toBe('BAD_INPUT');
  }
}

describe('Key', () => {
  it('has restic\'s overhead constants', () => {
    expect([IV_SIZE, MAC_SIZE, CRYPTO_OVERHEAD]).toEqual([16, 16, 32]);
  });

  for (const size of [0, 1, 15, 16, 17, 1 << 20]) {
    it(`round-trips ${size} bytes as IV || CIPHERTEXT || MAC`, () => {
      const key = Key.random();
      const plain = randomBytes(size);
      const sealed = key.encrypt(plain);
      expect(sealed.length).toBe(size + CRYPTO_OVERHEAD);
      if (size >= 16) expect(sealed.subarray(IV_SIZE, IV_SIZE + 16).equals(plain.subarray(0, 16))).toBe(false);
      expect(key.decrypt(sealed).equals(plain)).toBe(true);
    });
  }

  it('uses a fresh IV for every message', () => {
    const key = Key.random();
    const plain = Buffer.from('same plaintext');
    const a = key.encrypt(plain);
    const b = key.encrypt(plain);
    expect(a.subarray(0, IV_SIZE).equals(b.subarray(0, IV_SIZE))).toBe(false);
    expect(a.equals(b)).toBe(false);
  });

  it('builds restic\'s construction: AES-256-CTR, Poly1305 over the ciphertext with s = AES-128_k(IV)', () => {
    const key = Key.random();
    const raw = key.raw;
    const plain = randomBytes(100);
    const sealed = key.encrypt(plain);
    const iv = sealed.subarray(0, IV_SIZE);
    const ct = sealed.subarray(IV_SIZE, sealed.length - MAC_SIZE);

    const ctr = createCipheriv('aes-256-ctr', raw.encrypt, iv);
    expect(Buffer.concat([ctr.update(plain), ctr.final()]).equals(ct)).toBe(true);

    const ecb = createCipheriv('aes-128-ecb', raw.macK, null).setAutoPadding(false);
    const s = ecb.update(iv);
    const tag = poly1305(Buffer.concat([raw.macR, s]), ct);
    expect(Buffer.from(tag).equals(sealed.subarray(sealed.length - MAC_SIZE))).toBe(true);
  });

  it('detects every single flipped bit in IV, ciphertext and MAC', () => {
    const key = Key.random();
    const sealed = key.encrypt(randomBytes(40));
    for (let i = 0; i < sealed.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(sealed);
        bad[i] ^= 1 << bit;
        expectIntegrityError(() => key.decrypt(bad));
      }
    }
  });

  it('detects flipped bits in a 1 MiB message', () => {
    const key = Key.random();
    const sealed = key.encrypt(randomBytes(1 << 20));
    const positions = [0, 15, 16, 17, 4096, 1 << 19, sealed.length - 17, sealed.length - 16, sealed.length - 1];
    for (const pos of positions) {
      const bad = Buffer.from(sealed);
      bad[pos] ^= 0x80;
      expectIntegrityError(() => key.decrypt(bad));
    }
  });

  it('rejects inputs too short to be sealed and truncated messages', () => {
    const key = Key.random();
    for (let len = 0; len < CRYPTO_OVERHEAD; len++) expectIntegrityError(() => key.decrypt(randomBytes(len)));
    const sealed = key.encrypt(Buffer.from('hello, world'));
    expectIntegrityError(() => key.decrypt(sealed.subarray(0, sealed.length - 1)));
    expectIntegrityError(() => key.decrypt(sealed.subarray(1)));
  });

  it('rejects data sealed under another key', () => {
    const sealed = Key.random().encrypt(Buffer.from('secret'));
    expectIntegrityError(() => Key.random().decrypt(sealed));
  });

  it('rejects an all-zero IV as restic does', () => {
    const key = Key.random();
    const sealed = key.encrypt(Buffer.alloc(10));
    sealed.fill(0, 0, IV_SIZE);
    expectIntegrityError(() => key.decrypt(sealed));
  });

  it('decrypts inputs that are views into a larger buffer', () => {
    const key = Key.random();
    const plain = randomBytes(300);
    const sealed = key.encrypt(plain);
    const backing = Buffer.concat([randomBytes(7), sealed, randomBytes(9)]);
    expect(key.decrypt(backing.subarray(7, 7 + sealed.length)).equals(plain)).toBe(true);
  });

  it('seals and opens in place: same format as encrypt and decrypt, damage still detected first', () => {
    const key = Key.random();
    const plain = randomBytes(600_000);
    const data = Buffer.from(plain);
    const iv = Buffer.alloc(IV_SIZE);
    const mac = Buffer.alloc(MAC_SIZE);
    key.sealInPlace(data, iv, mac);
    expect(data.equals(plain)).toBe(false);
    const sealed = Buffer.concat([iv, data, mac]);
    expect(key.decrypt(sealed).equals(plain)).toBe(true);
    const backing = Buffer.concat([randomBytes(5), sealed]);
    const opened = key.openInPlace(backing.subarray(5));
    expect(opened.equals(plain)).toBe(true);
    expect(opened.buffer).toBe(backing.buffer);
    const damaged = key.encrypt(plain);
    damaged[1000] ^= 1;
    const before = Buffer.from(damaged);
    expectIntegrityError(() => key.openInPlace(damaged));
    expect(damaged.equals(before)).toBe(true);
  });

  it('round-trips through JSON and raw bytes', () => {
    const key = Key.random();
    const j = key.toJSON();
    expect(Object.keys(j)).toEqual(['mac', 'encrypt']);
    expect(Buffer.from(j.encrypt, 'base64').length).toBe(32);
    expect(Buffer.from(j.mac.k, 'base64').length).toBe(16);
    expect(Buffer.from(j.mac.r, 'base64').length).toBe(16);

    const sealed = key.encrypt(Buffer.from('payload'));
    const fromJson = Key.fromJSON(JSON.parse(JSON.stringify(j)));
    expect(fromJson.toJSON()).toEqual(j);
    expect(fromJson.decrypt(sealed).toString()).toBe('payload');

    const raw = structuredClone(key.raw);
    expect(Key.fromRaw(raw).decrypt(sealed).toString()).toBe('payload');
  });

  it('hands out copies of its raw bytes', () => {
    const key = Key.random();
    const sealed = key.encrypt(Buffer.from('x'));
    key.raw.encrypt.fill(0);
    key.raw.macR.fill(0);
    expect(key.decrypt(sealed).toString()).toBe('x');
  });

  it('rejects malformed master keys with BAD_INPUT', () => {
    const good = Key.random().toJSON();
    const b64 = (n: number): string => randomBytes(n).toString('base64');
    expectBadInput(() => Key.fromJSON({ ...good, encrypt: b64(31) }));
    expectBadInput(() => Key.fromJSON({ ...good, mac: { k: b64(15), r: good.mac.r } }));
    expectBadInput(() => Key.fromJSON({ ...good, mac: { k: good.mac.k, r: b64(17) } }));
    expectBadInput(() => Key.fromJSON({ ...good, encrypt: Buffer.alloc(32).toString('base64') }));
    expectBadInput(() => Key.fromJSON({ encrypt: good.encrypt } as never));
    expectBadInput(() => Key.fromJSON(null as never));
    expectBadInput(() => Key.fromRaw({ encrypt: new Uint8Array(32).fill(1), macK: new Uint8Array(16), macR: new Uint8Array(16).fill(1) }));
  });
});
