import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Key } from '../crypto/crypto.js';
import { hashId } from './id.js';
import { HeaderBlobs, PackBuilder, PackFileWriter, encodePackHeader, parsePackHeader, parsePackTail, type PackedBlob } from './pack.js';
import { indexJSONLength, MasterIndex, MAX_BLOBS_PER_INDEX, splitIndexFiles, writeIndexJSON, type IndexFileContent, type IndexJSON } from './master-index.js';
import { decodeUnpacked, encodeUnpacked, encodeUnpackedStream } from './unpacked.js';

describe('packs', () => {
  const key = Key.random();

  it('round trips a header with plain and compressed entries of both types', () => {
    const blobs = [
      { id: hashId(Buffer.from('a')), type: 'data' as const, offset: 0, length: 40 },
      { id: hashId(Buffer.from('b')), type: 'data' as const, offset: 40, length: 50, uncompressedLength: 900 },
      { id: hashId(Buffer.from('c')), type: 'tree' as const, offset: 90, length: 60 },
      { id: hashId(Buffer.from('d')), type: 'tree' as const, offset: 150, length: 70, uncompressedLength: 1000 },
    ];
    const plain = encodePackHeader(blobs);
    expect(plain.length).toBe(37 + 41 + 37 + 41);
    expect([...plain.subarray(0, 1)]).toEqual([0]);
    expect(plain[37]).toBe(2);
    expect(plain[78]).toBe(1);
    expect(plain[115]).toBe(3);
    expect(parsePackHeader(plain, 'p')).toEqual(blobs);
  });

  it('builds a pack whose tail parses back and whose name is its hash', () => {
    const b = new PackBuilder(key);
    const blobA = key.encrypt(Buffer.from('hello'));
    const blobB = key.encrypt(Buffer.from('world!'));
    b.add('data', hashId(Buffer.from('hello')), blobA);
    b.add('data', hashId(Buffer.from('world!')), blobB, 6);
    const { id, bytes, blobs } = b.finish();
    expect(id).toBe(hashId(bytes));
    const r = parsePackTail(key, bytes, bytes.length, id);
    expect(r).toEqual({ blobs });
    expect(blobs[1].offset).toBe(blobA.length);
  });

  it('writes packs straight to a file that parses back, named by its hash, and removes aborted ones', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-pack-'));
    try {
      // Small blobs are gathered and written 1 MiB at a time, large ones sealed in place and written
      // at once: a mix, with enough small ones to fill the gathering buffer more than once, in order.
      const sizes = [500, 1500, 300 * 1024, 2500, ...Array.from({ length: 30 }, (_, i) => 100 * 1024 + i), 200 * 1024, 0, 7];
      const w = new PackFileWriter(key, path.join(dir, 'p1'), Buffer.alloc(1024 * 1024));
      const plains: Buffer[] = [];
      sizes.forEach((size, i) => {
        const plain = randomBytes(size);
        plains.push(Buffer.from(plain));
        w.add('data', hashId(plain), plain, i === 2 ? 9999 : undefined);
      });
      const { id, length, blobs } = w.finish();
      const bytes = fs.readFileSync(w.path);
      expect(bytes.length).toBe(length);
      expect(id).toBe(hashId(bytes));
      expect(parsePackTail(key, bytes, length, id)).toEqual({ blobs });
      expect(blobs.map((b) => b.length)).toEqual(sizes.map((n) => n + 32));
      expect(blobs[2].uncompressedLength).toBe(9999);
      blobs.forEach((e, i) => expect(key.decrypt(bytes.subarray(e.offset, e.offset + e.length)).equals(plains[i])).toBe(true));
      expect(() => new PackFileWriter(key, w.path)).toThrow(/EEXIST/);

      const aborted = new PackFileWriter(key, path.join(dir, 'p2'));
      aborted.add('data', hashId(Buffer.from('x')), Buffer.from('x'));
      aborted.abort();
      expect(fs.readdirSync(dir)).toEqual(['p1']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('asks for more bytes when the header does not fit the tail it was given', () => {
    const b = new PackBuilder(key);
    for (let i = 0; i < 100; i++) b.add('data', hashId(Buffer.from([i])), key.encrypt(Buffer.from([i])));
    const { id, bytes } = b.finish();
    const r = parsePackTail(key, bytes.subarray(bytes.length - 100), bytes.length, id);
    expect('need' in r && r.need).toBeGreaterThan(100);
  });

  it('rejects damaged headers and lengths', () => {
    const b = new PackBuilder(key);
    b.add('data', hashId(Buffer.from('x')), key.encrypt(Buffer.from('x')));
    const { id, bytes } = b.finish();
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 10] ^= 1;
    expect(() => parsePackTail(key, flipped, flipped.length, id)).toThrow(/header fails verification/);
    const badLen = Buffer.from(bytes);
    badLen.writeUInt32LE(0xffffff, badLen.length - 4);
    expect(() => parsePackTail(key, badLen, badLen.length, id)).toThrow(/invalid header length/);
    expect(() => parsePackTail(key, bytes, bytes.length + 5, id)).toThrow(/header describes/);
  });
});

/** An index file's JSON as writeIndexJSON writes it, each piece copied before the next overwrites it; its length checked. */
function indexJSON(f: IndexFileContent): string {
  const pieces: Buffer[] = [];
  writeIndexJSON(f, (p) => pieces.push(Buffer.from(p)));
  const all = Buffer.concat(pieces);
  expect(all.length).toBe(indexJSONLength(f));
  return all.toString('latin1');
}

describe('index', () => {
  it('splits index files by blob count and keeps the first location of a duplicate', () => {
    const packs = Array.from({ length: 3 }, (_, p) => ({
      id: hashId(Buffer.from(`pack${p}`)),
      blobs: Array.from({ length: 30_000 }, (_, i) => ({ id: hashId(Buffer.from(`${p}-${i}`)), type: 'data' as const, offset: i * 100, length: 100 })),
    }));
    const files = splitIndexFiles(packs, ['f'.repeat(64)]).map((f) => JSON.parse(indexJSON(f)) as IndexJSON);
    expect(files.length).toBe(3);
    for (const f of files) expect(f.packs.reduce((n, p) => n + p.blobs.length, 0)).toBeLessThanOrEqual(MAX_BLOBS_PER_INDEX);
    expect(files[0].supersedes).toEqual(['f'.repeat(64)]);
    expect(files[1].supersedes).toBeUndefined();
    expect(files.map((f) => f.packs.map((p) => p.id))).toEqual(packs.map((p) => [p.id]));

    const idx = new MasterIndex();
    for (const f of files) idx.addIndexJSON(f, 'x');
    expect(idx.size).toBe(90_000);
    const dup = packs[0].blobs[5];
    idx.addPack(hashId(Buffer.from('later')), [{ ...dup, offset: 7 }]);
    expect(idx.lookup('data', dup.id)?.packId).toBe(packs[0].id);
    expect(idx.has('tree', dup.id)).toBe(false);
  });

  it('writes uncompressed_length only for compressed blobs', () => {
    const [f] = splitIndexFiles([{ id: 'a'.repeat(64), blobs: [{ id: 'b'.repeat(64), type: 'tree', offset: 0, length: 50, uncompressedLength: 80 }, { id: 'c'.repeat(64), type: 'tree', offset: 50, length: 40 }] }]);
    expect(indexJSON(f)).toBe(`{"packs":[{"id":"${'a'.repeat(64)}","blobs":[{"id":"${'b'.repeat(64)}","type":"tree","offset":0,"length":50,"uncompressed_length":80},{"id":"${'c'.repeat(64)}","type":"tree","offset":50,"length":40}]}]}`);
  });

  it('keeps a pack\'s blobs as header bytes that give back the same blobs, index text and lookups', () => {
    let offset = 0;
    const blobs: PackedBlob[] = Array.from({ length: 5 }, (_, i) => {
      const b = { id: hashId(Buffer.from(`h${i}`)), type: i === 4 ? ('tree' as const) : ('data' as const), offset, length: 40 + i * 7, ...(i % 2 ? { uncompressedLength: 900 + i } : {}) };
      offset += b.length;
      return b;
    });
    const compact = HeaderBlobs.of(blobs);
    expect(compact.length).toBe(5);
    expect(compact.header.length).toBe(3 * 37 + 2 * 41);
    expect([...compact]).toEqual(blobs.map((b) => ({ uncompressedLength: undefined, ...b })));
    const id = hashId(Buffer.from('pack'));
    const text = (list: PackedBlob[] | HeaderBlobs) => indexJSON(splitIndexFiles([{ id, blobs: list }])[0]);
    expect(text(compact)).toBe(text(blobs));
    // Thousands of blobs: the text crosses many of the writer's pieces, from header bytes as from objects.
    let at = 0;
    const many: PackedBlob[] = Array.from({ length: 5000 }, (_, i) => {
      const b = { id: randomBytes(32).toString('hex'), type: i % 3 ? ('data' as const) : ('tree' as const), offset: at, length: 33 + ((i * 7919) % 100_000), ...(i % 2 ? { uncompressedLength: 10 ** (i % 10) } : {}) };
      at += b.length;
      return b;
    });
    expect(text(HeaderBlobs.of(many))).toBe(text(many));
    // ... and into the index's table straight from those bytes, growing it on the way.
    const big = new MasterIndex();
    big.addPack(id, HeaderBlobs.of(many));
    expect(big.size).toBe(many.length);
    for (const b of many) expect(big.lookup(b.type, b.id)).toEqual({ packId: id, type: b.type, offset: b.offset, length: b.length, uncompressedLength: b.uncompressedLength });
    expect(() => new MasterIndex().addPack(id, new HeaderBlobs(Buffer.alloc(37, 7), 1))).toThrow(/invalid blob type 7/);
    expect(() => new MasterIndex().addPack(id, new HeaderBlobs(compact.header.subarray(0, 40), 2))).toThrow(/truncated header entry/);
    expect(text(many)).toBe(JSON.stringify({ packs: [{ id, blobs: many.map((b) => ({ id: b.id, type: b.type, offset: b.offset, length: b.length, ...(b.uncompressedLength === undefined ? {} : { uncompressed_length: b.uncompressedLength }) })) }] }));
    const idx = new MasterIndex();
    idx.addPack(id, compact);
    for (const b of blobs) expect(idx.lookup(b.type, b.id)).toEqual({ packId: id, type: b.type, offset: b.offset, length: b.length, uncompressedLength: b.uncompressedLength });
  });

  it('writes the text JSON.stringify writes, an empty file that only supersedes, and none for nothing', () => {
    const packs = Array.from({ length: 4 }, (_, p) => ({
      id: hashId(Buffer.from(`p${p}`)),
      blobs: Array.from({ length: p * 3 }, (_, i) => ({ id: hashId(Buffer.from(`${p}/${i}`)), type: i % 2 ? ('tree' as const) : ('data' as const), offset: [0, 9, 10, 99, 100, 4294967295][i % 6], length: 999 + i, ...(i % 3 ? { uncompressedLength: [1, 4294967295][i % 2] } : {}) })),
    }));
    const [f] = splitIndexFiles(packs, ['e'.repeat(64), 'd'.repeat(64)]);
    const expected = {
      supersedes: ['e'.repeat(64), 'd'.repeat(64)],
      packs: packs.map((p) => ({ id: p.id, blobs: p.blobs.map((b) => ({ id: b.id, type: b.type, offset: b.offset, length: b.length, ...(b.uncompressedLength === undefined ? {} : { uncompressed_length: b.uncompressedLength }) })) })),
    };
    expect(indexJSON(f)).toBe(JSON.stringify(expected));
    // Ids go out unquoted, so anything but lowercase hex is refused rather than written.
    const one = packs[1].blobs[0];
    expect(() => indexJSON(splitIndexFiles([{ id: 'é'.repeat(64), blobs: [one] }])[0])).toThrow(/invalid id/);
    expect(() => indexJSON(splitIndexFiles([{ id: packs[1].id, blobs: [{ ...one, id: `${'a'.repeat(63)}"` }] }])[0])).toThrow(/invalid id/);
    expect(() => indexJSON(splitIndexFiles([{ id: packs[1].id, blobs: [{ ...one, id: 'A'.repeat(64) }] }])[0])).toThrow(/invalid id/);
    expect(() => indexJSON(splitIndexFiles([], ['x'.repeat(64)])[0])).toThrow(/invalid id/);
    const onlySupersedes = splitIndexFiles([], ['e'.repeat(64)]);
    expect(onlySupersedes.map((x) => indexJSON(x))).toEqual([`{"supersedes":["${'e'.repeat(64)}"],"packs":[]}`]);
    expect(splitIndexFiles([])).toEqual([]);
  });
});

describe('unpacked files', () => {
  it('encodes v2 with the zstd byte and reads plain JSON too', () => {
    const json = JSON.stringify({ a: 'x'.repeat(1000) });
    const v2 = encodeUnpacked(json, true);
    expect(v2[0]).toBe(2);
    expect(v2.length).toBeLessThan(json.length);
    expect(decodeUnpacked(v2, 't')).toBe(json);
    expect(decodeUnpacked(encodeUnpacked(json, false), 't')).toBe(json);
    expect(() => decodeUnpacked(Buffer.from([9, 1, 2]), 'thing')).toThrow(/thing has unknown encoding version 9/);
  });

  it('encodes JSON given in pieces as the whole, in both versions, and refuses pieces that do not add up', () => {
    const parts = Array.from({ length: 300 }, (_, i) => Buffer.from(`{"n":${i},"s":"${'é'.repeat(i % 7)}${randomBytes(600).toString('hex')}"},`));
    const joined = Buffer.concat(parts).toString('utf8');
    const write = (sink: (piece: Uint8Array) => void) => parts.forEach((p) => sink(p));
    const size = Buffer.byteLength(joined);
    const v2 = encodeUnpackedStream(write, size, true);
    expect(v2[0]).toBe(2);
    expect(decodeUnpacked(v2, 't')).toBe(joined);
    expect(decodeUnpacked(encodeUnpackedStream(write, size, false), 't')).toBe(joined);
    expect(() => encodeUnpackedStream(write, size - 1, false)).toThrow(/longer than/);
    expect(() => encodeUnpackedStream(write, size + 1, false)).toThrow(/not \d+/);
  });
});
