import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSodium, poly1305, poly1305Implementations, poly1305Into, poly1305Native, type AddonRequire, type Sodium } from './poly1305.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** Straight from the RFC 8439 2.5.1 pseudocode, with BigInt: slow but obviously right. */
function referencePoly1305(key: Uint8Array, msg: Uint8Array): Uint8Array {
  const le = (b: Uint8Array): bigint => BigInt('0x' + (Buffer.from(b).reverse().toString('hex') || '0'));
  const r = le(key.subarray(0, 16)) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const s = le(key.subarray(16, 32));
  const p = (1n << 130n) - 5n;
  let acc = 0n;
  for (let i = 0; i < msg.length; i += 16) {
    const block = msg.subarray(i, i + 16);
    acc = ((acc + le(block) + (1n << BigInt(8 * block.length))) * r) % p;
  }
  const tag = (acc + s) & ((1n << 128n) - 1n);
  return Buffer.from(tag.toString(16).padStart(32, '0'), 'hex').reverse();
}

const IETF_TEXT =
  'Any submission to the IETF intended by the Contributor for publication as all or part of an IETF ' +
  'Internet-Draft or RFC and any statement made within the context of an IETF activity is considered an ' +
  '"IETF Contribution". Such statements include oral statements in IETF sessions, as well as written and ' +
  'electronic communications made at any time or place, which are addressed to';

const JABBERWOCKY =
  "'Twas brillig, and the slithy toves\nDid gyre and gimble in the wabe:\n" +
  'All mimsy were the borogoves,\nAnd the mome raths outgrabe.';

const R1_4 = '01000000000000000400000000000000';
const ZERO16 = '00000000000000000000000000000000';

/** RFC 8439 section 2.5.2 and Appendix A.3 (#1 to #11). */
const VECTORS: { name: string; key: string; msg: Buffer; tag: string }[] = [
  {
    name: '2.5.2',
    key: '85d6be7857556d337f4452fe42d506a8 0103808afb0db2fd4abff6af4149f51b',
    msg: Buffer.from('Cryptographic Forum Research Group'),
    tag: 'a8061dc1305136c6c22b8baf0c0127a9',
  },
  { name: 'A.3 #1', key: ZERO16 + ZERO16, msg: Buffer.alloc(64), tag: ZERO16 },
  {
    name: 'A.3 #2',
    key: ZERO16 + '36e5f6b5c5e06070f0efca96227a863e',
    msg: Buffer.from(IETF_TEXT),
    tag: '36e5f6b5c5e06070f0efca96227a863e',
  },
  {
    name: 'A.3 #3',
    key: '36e5f6b5c5e06070f0efca96227a863e' + ZERO16,
    msg: Buffer.from(IETF_TEXT),
    tag: 'f3477e7cd95417af89a6b8794c310cf0',
  },
  {
    name: 'A.3 #4',
    key: '1c9240a5eb55d38af333888604f6b5f0 473917c1402b80099dca5cbc207075c0',
    msg: Buffer.from(JABBERWOCKY),
    tag: '4541669a7eaaee61e708dc7cbcc5eb62',
  },
  {
    name: 'A.3 #5',
    key: '02000000000000000000000000000000' + ZERO16,
    msg: hex('ffffffffffffffffffffffffffffffff'),
    tag: '03000000000000000000000000000000',
  },
  {
    name: 'A.3 #6',
    key: '02000000000000000000000000000000 ffffffffffffffffffffffffffffffff',
    msg: hex('02000000000000000000000000000000'),
    tag: '03000000000000000000000000000000',
  },
  {
    name: 'A.3 #7',
    key: '01000000000000000000000000000000' + ZERO16,
    msg: hex('ffffffffffffffffffffffffffffffff f0ffffffffffffffffffffffffffffff 11000000000000000000000000000000'),
    tag: '05000000000000000000000000000000',
  },
  {
    name: 'A.3 #8',
    key: '01000000000000000000000000000000' + ZERO16,
    msg: hex('ffffffffffffffffffffffffffffffff fbfefefefefefefefefefefefefefefe 01010101010101010101010101010101'),
    tag: '00000000000000000000000000000000',
  },
  {
    name: 'A.3 #9',
    key: '02000000000000000000000000000000' + ZERO16,
    msg: hex('fdffffffffffffffffffffffffffffff'),
    tag: 'faffffffffffffffffffffffffffffff',
  },
  {
    name: 'A.3 #10',
    key: R1_4 + ZERO16,
    msg: hex(
      'e33594d7505e43b90000000000000000 3394d7505e4379cd0100000000000000 ' +
        '00000000000000000000000000000000 01000000000000000000000000000000',
    ),
    tag: '14000000000000005500000000000000',
  },
  {
    name: 'A.3 #11',
    key: R1_4 + ZERO16,
    msg: hex('e33594d7505e43b90000000000000000 3394d7505e4379cd0100000000000000 00000000000000000000000000000000'),
    tag: '13000000000000000000000000000000',
  },
];

describe('poly1305', () => {
  it('has the RFC texts at their published lengths', () => {
    expect(IETF_TEXT.length).toBe(375);
    expect(JABBERWOCKY.length).toBe(127);
  });

  it('uses libsodium for long messages (sodium-native loads here)', () => {
    expect(poly1305Native).toBe('libsodium');
    expect(Object.keys(poly1305Implementations).sort()).toEqual(['libsodium', 'webassembly']);
  });

  describe('loading sodium-native', () => {
    const real = createRequire(import.meta.url);
    /** A require that records what it loads; `fail` ids throw as a missing or broken file would. */
    const recording = (resolve: (id: string) => string, fail: (id: string) => boolean = () => false): { req: AddonRequire; loaded: string[] } => {
      const loaded: string[] = [];
      const req = Object.assign(
        (id: string): unknown => {
          loaded.push(id);
          if (fail(id)) throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
          return real(id);
        },
        { resolve },
      );
      return { req, loaded };
    };
    const works = (s: Sodium | null): void => {
      expect(s).not.toBeNull();
      const key = randomBytes(32);
      const msg = randomBytes(3000);
      const out = new Uint8Array(16);
      s!.crypto_onetimeauth(out, msg, key);
      expect(toHex(out)).toBe(toHex(referencePoly1305(key, msg)));
    };

    it('loads the addon built for this platform straight from the package, without its resolver', () => {
      const { req, loaded } = recording((id) => real.resolve(id));
      works(loadSodium(req));
      expect(loaded).toEqual([path.join(path.dirname(real.resolve('sodium-native')), 'prebuilds', `${process.platform}-${process.arch}`, 'sodium-native.node')]);
      // This module's own load went the same way: require-addon was never loaded.
      expect(Object.keys(real.cache).filter((f) => f.includes(`${path.sep}require-addon${path.sep}`))).toEqual([]);
    });

    it("falls back to the package's entry when there is no such file", () => {
      const empty = mkdtempSync(path.join(os.tmpdir(), 'cairn-sodium-'));
      try {
        // A package folder without prebuilds: the path is tried for real and fails.
        const { req, loaded } = recording((id) => (id === 'sodium-native' ? path.join(empty, 'index.js') : real.resolve(id)));
        works(loadSodium(req));
        expect(loaded).toEqual([path.join(empty, 'prebuilds', `${process.platform}-${process.arch}`, 'sodium-native.node'), 'sodium-native']);
      } finally {
        rmSync(empty, { recursive: true, force: true });
      }
    });

    it('falls back when the file loads but is not sodium-native, and gives null when nothing loads', () => {
      // The file is there but is something else (here: the package's metadata).
      const other = recording((id) => (id === 'sodium-native' ? real.resolve('sodium-native/package.json') : real.resolve(id)));
      const odd = Object.assign((id: string): unknown => (id.endsWith('.node') ? real(real.resolve('sodium-native/package.json')) : other.req(id)), { resolve: other.req.resolve });
      works(loadSodium(odd));
      expect(other.loaded).toEqual(['sodium-native']);
      const none = recording((id) => real.resolve(id), () => true);
      expect(loadSodium(none.req)).toBeNull();
      expect(none.loaded).toHaveLength(2);
    });
  });

  for (const [name, impl] of Object.entries(poly1305Implementations)) {
    const tag = (key: Uint8Array, msg: Uint8Array): Uint8Array => {
      const out = new Uint8Array(16);
      impl(key, msg, out, 0);
      return out;
    };

    describe(name, () => {
      for (const v of VECTORS) {
        it(`matches RFC 8439 ${v.name}`, () => {
          expect(toHex(tag(hex(v.key), v.msg))).toBe(v.tag);
          expect(toHex(referencePoly1305(hex(v.key), v.msg))).toBe(v.tag);
        });
      }

      it('matches the BigInt reference on random keys and every length around block and chunk edges', () => {
        const lengths = [0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 1023, 1024, 1025, 65535, 65536, 65537, 65536 + 16, 2 * 65536 + 5, 200_003];
        for (let i = 0; i < 64; i++) lengths.push(i);
        for (const len of lengths) {
          const key = randomBytes(32);
          const msg = randomBytes(len);
          expect(toHex(tag(key, msg)), `length ${len}`).toBe(toHex(referencePoly1305(key, msg)));
        }
      });

      it('matches the reference when every limb is at its maximum', () => {
        const key = Buffer.alloc(32, 0xff);
        for (const len of [15, 16, 17, 48, 1024, 65536 + 7]) {
          const msg = Buffer.alloc(len, 0xff);
          expect(toHex(tag(key, msg)), `length ${len}`).toBe(toHex(referencePoly1305(key, msg)));
        }
      });

      it('reads messages that are views into larger buffers', () => {
        const backing = randomBytes(5000);
        const key = randomBytes(32);
        for (const view of [backing.subarray(3, 3 + 501), backing.subarray(7, 7 + 4001)]) {
          expect(toHex(tag(key, view))).toBe(toHex(referencePoly1305(key, view)));
        }
      });

      it('writes into a caller buffer at an offset, and nowhere else', () => {
        const key = randomBytes(32);
        for (const len of [77, 3000]) {
          const msg = randomBytes(len);
          const out = Buffer.alloc(40, 0xaa);
          impl(key, msg, out, 20);
          expect(toHex(out.subarray(20, 36))).toBe(toHex(referencePoly1305(key, msg)));
          expect(out.subarray(0, 20).every((b) => b === 0xaa)).toBe(true);
          expect(out.subarray(36).every((b) => b === 0xaa)).toBe(true);
        }
      });

      it('rejects a key of the wrong size and an output that has no room', () => {
        expect(() => impl(new Uint8Array(31), new Uint8Array(2048), new Uint8Array(16), 0)).toThrow(RangeError);
        expect(() => impl(new Uint8Array(32), new Uint8Array(2048), new Uint8Array(20), 5)).toThrow(/does not fit/);
      });
    });
  }

  it('gives the same tags through the routed functions on both sides of the switch to libsodium', () => {
    const key = randomBytes(32);
    for (const len of [0, 16, 1023, 1024, 1025, 9000]) {
      const msg = randomBytes(len);
      const out = Buffer.alloc(24);
      poly1305Into(key, msg, out, 8);
      expect(toHex(out.subarray(8)), `length ${len}`).toBe(toHex(referencePoly1305(key, msg)));
      expect(toHex(poly1305(key, msg)), `length ${len}`).toBe(toHex(referencePoly1305(key, msg)));
    }
  });

  it('rejects a key of the wrong size', () => {
    expect(() => poly1305(new Uint8Array(31), new Uint8Array(0))).toThrow(RangeError);
    expect(() => poly1305(new Uint8Array(31), new Uint8Array(4096))).toThrow(RangeError);
  });
});
