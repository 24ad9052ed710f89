import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/tools.js';
import { goModeFromUnix, goModeString, unixPermFromGoMode, nodeTypeFromUnix, GoMode } from './filemode.js';
import { formatTime, parseTime, timeIsNs } from './time.js';
import { goQuote, goUnquote } from './goquote.js';
import { applyMetadataSync, nodeMeta, splitDevice } from './apply.js';
import { readXattrs } from './xattr.js';
import { nodeToJSON, sameNode, utf8Compare, type Node } from './node.js';

describe('Go file modes', () => {
  it('converts every type and the special bits', () => {
    const cases: [number, number, string][] = [
      [0o100644, 0o644, '-rw-r--r--'],
      [0o040755, GoMode.Dir + 0o755, 'drwxr-xr-x'],
      [0o041777, GoMode.Dir + GoMode.Sticky + 0o777, 'dtrwxrwxrwx'],
      [0o120777, GoMode.Symlink + 0o777, 'Lrwxrwxrwx'],
      [0o020666, GoMode.Device + GoMode.CharDevice + 0o666, 'Dcrw-rw-rw-'],
      [0o060660, GoMode.Device + 0o660, 'Drw-rw----'],
      [0o010644, GoMode.NamedPipe + 0o644, 'prw-r--r--'],
      [0o140755, GoMode.Socket + 0o755, 'Srwxr-xr-x'],
      [0o104755, GoMode.Setuid + 0o755, 'urwxr-xr-x'],
      [0o102755, GoMode.Setgid + 0o755, 'grwxr-xr-x'],
    ];
    for (const [st, go, str] of cases) {
      expect(goModeFromUnix(st)).toBe(go);
      expect(goModeString(go)).toBe(str);
      expect(unixPermFromGoMode(go)).toBe(st & 0o7777);
    }
    expect(nodeTypeFromUnix(0o020666)).toBe('chardev');
    expect(nodeTypeFromUnix(0o060666)).toBe('dev');
  });
});

describe('Go time encoding', () => {
  it('formats like Go: trimmed fraction, Z or offset', () => {
    expect(formatTime(1_614_834_367_122_999_000n, 0)).toBe('2021-03-04T05:06:07.122999Z');
    expect(formatTime(1_614_834_367_000_000_000n, 60)).toBe('2021-03-04T06:06:07+01:00');
    expect(formatTime(1_614_834_367_000_000_001n, -330)).toBe('2021-03-03T23:36:07.000000001-05:30');
    expect(formatTime(1_614_834_367_100_000_000n, 0)).toBe('2021-03-04T05:06:07.1Z');
  });
  it('parses any RFC 3339 back to the same instant', () => {
    for (const ns of [0n, 1n, 1_614_834_367_122_999_000n, 1_700_000_000_999_999_999n]) {
      for (const off of [0, 60, -330, 840]) expect(parseTime(formatTime(ns, off))).toBe(ns);
    }
    expect(parseTime('2015-01-02T18:10:13.48307196+01:00')).toBe(1_420_218_613_483_071_960n);
    expect(parseTime('2015-01-02t18:10:13z')).toBe(1_420_222_213_000_000_000n);
    // Go's zero time, which restic writes for times it does not know.
    expect(parseTime('0001-01-01T00:00:00Z')).toBe(-62_135_596_800_000_000_000n);
    expect(formatTime(-62_135_596_800_000_000_000n, 0)).toBe('0001-01-01T00:00:00Z');
    expect(parseTime('0099-12-31T23:59:59.5-01:00')).toBe(-59_011_455_600_500_000_000n);
    for (const bad of ['2015-01-02T18:10:13.1234567890Z', '2015-01-02T18:10:13.Z', '2015-01-02T18:10:13+0100', '2015-01-02 18:10:13Z', '2015-01-02T18:10:1xZ', '2015-01-02T18:10:13+01:0x', '2015-01-02T18:10:13Z ']) {
      expect(() => parseTime(bad)).toThrow(`invalid time ${JSON.stringify(bad)}: expected RFC 3339`);
    }
    expect(() => parseTime('yesterday')).toThrow(/invalid time/);
  });
  it('tells whether a time names the instant given as two 32-bit halves, without BigInt, exactly', () => {
    const halves = (ns: bigint): [number, number] => [Number(BigInt.asIntN(32, ns >> 32n)), Number(BigInt.asUintN(32, ns))];
    const cases = [0n, 1n, 999_999_999n, 4_294_967_295n, 4_294_967_296n, 1_614_834_367_122_999_000n, 1_700_000_000_999_999_999n, 9_223_372_036_854_775_807n - 999_999_999n, -1n, -1_000_000_000_000_000_001n];
    let x = 0x9e3779b97f4a7c15n;
    for (let i = 0; i < 300; i++) {
      x = (x * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
      cases.push((x >> 2n) % 4_102_444_800_000_000_000n);
    }
    for (const ns of cases) {
      for (const off of [0, 60, -330]) {
        const text = formatTime(ns, off);
        expect(timeIsNs(text, ...halves(ns))).toBe(true);
        expect(timeIsNs(text, ...halves(ns + 1n))).toBe(false);
        expect(timeIsNs(text, ...halves(ns - 1n))).toBe(false);
        expect(timeIsNs(text, ...halves(ns + (1n << 32n)))).toBe(false);
      }
    }
    expect(timeIsNs('yesterday', 0, 0)).toBe(false);
  });
  it('reads dates as Date.UTC does, days past the end of a month included, and refuses a month out of range', () => {
    let x = 12345;
    const rnd = (n: number): number => {
      x = (x * 1103515245 + 12345) % 2147483648;
      return x % n;
    };
    const p = (v: number, w = 2): string => String(v).padStart(w, '0');
    for (let i = 0; i < 20000; i++) {
      const [y, m, d, h, mi, se] = [100 + rnd(9900), 1 + rnd(12), 1 + rnd(31), rnd(24), rnd(60), rnd(60)];
      expect(parseTime(`${p(y, 4)}-${p(m)}-${p(d)}T${p(h)}:${p(mi)}:${p(se)}Z`)).toBe(BigInt(Date.UTC(y, m - 1, d, h, mi, se) / 1000) * 1_000_000_000n);
    }
    expect(() => parseTime('2015-13-02T18:10:13Z')).toThrow(/invalid time/);
    expect(() => parseTime('2015-00-02T18:10:13Z')).toThrow(/invalid time/);
  });
});

describe('Go string quoting of names', () => {
  it('escapes as strconv.Quote and reads it back', () => {
    const cases: [string, string][] = [
      ['plain.txt', 'plain.txt'],
      ['with space and\nnewline', 'with space and\\nnewline'],
      ['quote"back\\slash', 'quote\\"back\\\\slash'],
      ['unicode-äöü-日本語-😀', 'unicode-äöü-日本語-😀'],
      ['tab\tbell\x07nul\x00del\x7f', 'tab\\tbell\\anul\\x00del\\x7f'],
      ['zero\u200bwidth', 'zero\\u200bwidth'],
    ];
    for (const [raw, quoted] of cases) {
      expect(goQuote(raw)).toBe(quoted);
      expect(goUnquote(quoted)).toBe(raw);
    }
    expect(goUnquote('octal\\101')).toBe('octalA');
    expect(() => goUnquote('bad\\q')).toThrow(/invalid escaped name/);
  });
});

describe('device numbers', () => {
  it('splits st_rdev as glibc does', () => {
    expect(splitDevice(0x0103)).toEqual({ major: 1, minor: 3 });
    // makedev(259, 0x10005) = 0x10010305
    expect(splitDevice(0x10010305)).toEqual({ major: 259, minor: 0x10005 });
  });
});

describe('names that are not UTF-8', () => {
  it('quotes invalid bytes as \\xNN and reads them back byte for byte', async () => {
    const { goQuoteBytes, goUnquoteBytes, isUtf8 } = await import('./goquote.js');
    const raw = Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from('-ü-'), Buffer.from([0xff, 0xc3]), Buffer.from('\n')]);
    expect(isUtf8(raw)).toBe(false);
    expect(goQuoteBytes(raw)).toBe('caf\\xe9-ü-\\xff\\xc3\\n');
    expect(goUnquoteBytes(goQuoteBytes(raw)).equals(raw)).toBe(true);
    expect(isUtf8(Buffer.from('plain ü 😀'))).toBe(true);
    expect(goQuoteBytes(Buffer.from([0xed, 0xa0, 0x80]))).toBe('\\xed\\xa0\\x80');
  });
});

describe('node equality', () => {
  it('calls two nodes the same exactly when they encode to the same JSON', () => {
    const base: Node = {
      name: 'f', type: 'file', mode: 0o644, mtime: '2024-01-02T03:04:05.5Z', atime: '2024-01-02T03:04:05.5Z', ctime: '2024-01-02T03:04:05.5Z',
      uid: 1, gid: 2, user: 'u', group: 'g', inode: 3, device_id: 4, size: 5, links: 1,
      extended_attributes: [{ name: 'user.a', value: 'eA==' }], content: ['ab', 'cd'],
    };
    const variants: Partial<Node>[] = [
      {}, { name: 'g' }, { nameRaw: Buffer.from([0xff]) }, { type: 'symlink' }, { mode: 0o600 }, { mode: undefined }, { mode: 0 },
      { mtime: '2024-01-02T03:04:05.6Z' }, { atime: '2024-01-02T03:04:05Z' }, { ctime: '2025-01-02T03:04:05.5Z' },
      { uid: 0 }, { gid: 0 }, { user: '' }, { user: undefined }, { group: 'h' }, { inode: 0 }, { inode: undefined },
      { device_id: 5 }, { size: 0 }, { links: 2 }, { linktarget: 't' }, { linktarget_raw: 'dA==' },
      { extended_attributes: [] }, { extended_attributes: undefined }, { extended_attributes: [{ name: 'user.a', value: 'eQ==' }] },
      { extended_attributes: [{ name: 'user.b', value: 'eA==' }] }, { device: 7 },
      { content: ['ab'] }, { content: ['ab', 'ce'] }, { content: [] }, { content: null }, { subtree: 'ff' }, { error: 'e' },
    ];
    const nodes = variants.map((v) => ({ ...base, ...v }) as Node);
    nodes.push({ ...base, type: 'dir', content: null }, { ...base, type: 'dir', content: undefined as unknown as null });
    for (const a of nodes) {
      for (const b of nodes) expect(sameNode(a, b), `${JSON.stringify(a)} / ${JSON.stringify(b)}`).toBe(nodeToJSON(a) === nodeToJSON(b));
    }
  });
});

describe('byte order of names', () => {
  it('orders strings as their UTF-8 bytes, across ASCII, accents, U+E000-U+FFFF and astral characters', () => {
    const pool = ['a', 'b', 'Z', '.', 'é', 'ÿ', '\u4e2d', '\ue000', '\uffee', '\u{1f600}', '\u{10000}', ''];
    let seed = 7;
    const pick = (): string => pool[(seed = (seed * 1103515245 + 12345) % 2147483648) % pool.length];
    const names = Array.from({ length: 400 }, () => pick() + pick() + pick());
    for (const a of names) {
      for (const b of names.slice(0, 60)) {
        expect(Math.sign(utf8Compare(a, b)), `${a} / ${b}`).toBe(Buffer.compare(Buffer.from(a), Buffer.from(b)));
      }
    }
  });
});

describe('metadata a restore keeps', () => {
  const node = (atime: string, mtime: string): Node => ({ name: 'f', type: 'file', mode: 0o640, mtime, atime, ctime: mtime, uid: 0, gid: 0, content: [] });

  it('sets the times and mode the node has, to the microsecond', async () => {
    const file = path.join(await tempDir(), 'f');
    fs.writeFileSync(file, 'x');
    applyMetadataSync(file, nodeMeta(node('2021-02-03T04:05:06.123456789Z', '2020-01-02T03:04:05.987654321+02:00')), { owner: false });
    const st = fs.statSync(file, { bigint: true });
    expect(st.atimeNs).toBe(1612325106123456000n);
    expect(st.mtimeNs).toBe(1577927045987654000n);
    expect(Number(st.mode) & 0o777).toBe(0o640);
  });

  it('sets the mode, the times and the attributes the file system takes when it refuses one, then fails with that one', async () => {
    const file = path.join(await tempDir(), 'f');
    fs.writeFileSync(file, 'x');
    // The kernel knows no "bogus" namespace of attributes: it refuses that one on any file system.
    const n: Node = {
      ...node('2021-02-03T04:05:06.123456789Z', '2020-01-02T03:04:05.987654321+02:00'),
      extended_attributes: [
        { name: 'bogus.attr', value: Buffer.from('no').toString('base64') },
        { name: 'user.kept', value: Buffer.from('yes').toString('base64') },
      ],
    };
    expect(() => applyMetadataSync(file, nodeMeta(n), { owner: false })).toThrow(/not supported|EOPNOTSUPP/i);
    const st = fs.statSync(file, { bigint: true });
    expect(st.mtimeNs).toBe(1577927045987654000n);
    expect(st.atimeNs).toBe(1612325106123456000n);
    expect(Number(st.mode) & 0o777).toBe(0o640);
    expect(readXattrs(file)).toEqual([{ name: 'user.kept', value: Buffer.from('yes').toString('base64') }]);
  });

  it('keeps a time that does not parse as text, and setting it fails with the parser\'s message', async () => {
    const file = path.join(await tempDir(), 'f');
    fs.writeFileSync(file, 'x');
    const meta = nodeMeta(node('garbage', '2020-01-02T03:04:05Z'));
    expect(meta.atime).toBe('garbage');
    expect(meta.mtime).toBe(1577934245.0000005);
    expect(() => applyMetadataSync(file, meta, { owner: false })).toThrow('invalid time "garbage": expected RFC 3339');
  });
});
