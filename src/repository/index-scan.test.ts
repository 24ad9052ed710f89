import { describe, expect, it } from 'vitest';
import { CairnError } from '../errors.js';
import { hashId } from './id.js';
import { ROW_WORDS, scanIndex } from './index-scan.js';
import { MasterIndex, type IndexJSON } from './master-index.js';

const id = (s: string) => hashId(Buffer.from(s));

/** An index file's JSON as restic and Cairn write it. */
function sample(): IndexJSON {
  return {
    supersedes: [id('old1'), id('old2')],
    packs: [
      {
        id: id('p1'),
        blobs: [
          { id: id('a'), type: 'data', offset: 0, length: 4321, uncompressed_length: 9000 },
          { id: id('b'), type: 'tree', offset: 4321, length: 77 },
          { id: id('c'), type: 'data', offset: 4398, length: 4294967295, uncompressed_length: 4294967294 },
        ],
      },
      { id: id('empty'), blobs: [] },
      { id: id('p2'), blobs: [{ id: id('a'), type: 'tree', offset: 0, length: 50 }, { id: id('a'), type: 'data', offset: 50, length: 60 }] },
    ],
  };
}

/** What an index holds: every blob with its location, and its packs in order. */
function contents(idx: MasterIndex) {
  return { blobs: [...idx.entries()].sort(([a], [b]) => (a < b ? -1 : 1)), packs: [...idx.packIds()], size: idx.size };
}

/** The index's contents after reading `text` both ways, or the error each way gave. */
function bothWays(text: string) {
  const run = (f: (idx: MasterIndex) => void) => {
    const idx = new MasterIndex();
    // One pack already known, so pack numbers must follow on.
    idx.addPack(id('earlier'), [{ id: id('x'), type: 'data', offset: 0, length: 40 }]);
    try {
      f(idx);
      return contents(idx);
    } catch (err) {
      return { error: err instanceof CairnError ? `${err.code}: ${err.message}` : String(err) };
    }
  };
  const fast = run((idx) => idx.addIndexText(Buffer.from(text), 'i'));
  const viaJSON = run((idx) => {
    let j: IndexJSON;
    try {
      j = JSON.parse(text) as IndexJSON;
    } catch (err) {
      throw new CairnError('INTEGRITY', `index i is not valid JSON: ${(err as Error).message}`);
    }
    idx.addIndexJSON(j, 'i');
  });
  return { fast, viaJSON };
}

describe('index files read without JSON.parse', () => {
  it('reads the shape restic and Cairn write straight into the table, as the JSON path would', () => {
    const text = JSON.stringify(sample());
    const a = id('a');
    // A blob id in upper case means the same bytes, as Buffer.from(id, 'hex') reads it.
    for (const t of [text, `${text}\n`, JSON.stringify({ packs: sample().packs }), text.replace(`"id":"${a}"`, `"id":"${a.toUpperCase()}"`)]) {
      const scanned = scanIndex(Buffer.from(t));
      expect(scanned?.count).toBe(5);
      expect(scanned?.packs).toEqual([id('p1'), id('empty'), id('p2')]);
      const { fast, viaJSON } = bothWays(t);
      expect(fast).toEqual(viaJSON);
      expect(fast).toMatchObject({ size: 5, packs: [id('earlier'), id('p1'), id('p2')] });
    }
    const empty = bothWays('{"packs":[]}');
    expect(scanIndex(Buffer.from('{"packs":[]}'))?.count).toBe(0);
    expect(empty.fast).toEqual(empty.viaJSON);
  });

  it('leaves any other spelling to JSON.parse, with the same result or the same error', () => {
    const text = JSON.stringify(sample());
    const a = id('a');
    const variants = [
      JSON.stringify(sample(), null, 2),
      text.replace(`{"id":"${a}","type":"data","offset":0`, `{"type":"data","id":"${a}","offset":0`),
      text.replace(`"id":"${id('p1')}"`, `"id":"${id('p1').toUpperCase()}"`),
      text.replace('"offset":4321', '"offset":4.321e3'),
      text.replace('"offset":4321', '"offset":04321'),
      text.replace('"offset":4321', '"offset":-4321'),
      text.replace('"length":77', '"length":4294967296'),
      text.replace('"length":77', '"length":"77"'),
      text.replace(`"id":"${a}"`, `"id":"${a.slice(2)}"`),
      text.replace(`"id":"${a}"`, `"id":"${a.slice(0, 62)}zz"`),
      text.replace('"type":"tree"', '"type":"trees"'),
      text.replace('"uncompressed_length":9000', '"uncompressed_length":null'),
      text.replace('"blobs":[]', '"blobs":null'),
      text.replace(`"supersedes":["${id('old1')}"`, '"supersedes":["not an id"'),
      text.slice(0, -1),
      text.slice(0, 200),
      `${text}x`,
      ` ${text}`,
      '',
      '[]',
    ];
    for (const v of variants) {
      expect(scanIndex(Buffer.from(v)), `variant ${variants.indexOf(v)}`).toBeNull();
      const { fast, viaJSON } = bothWays(v);
      expect(fast, v.slice(0, 80)).toEqual(viaJSON);
    }
    // Some of them are errors either way, and say where.
    expect(bothWays(text.slice(0, 200)).fast).toMatchObject({ error: expect.stringMatching(/^INTEGRITY: index i is not valid JSON/) });
    expect(bothWays(text.replace(`"id":"${a}"`, `"id":"${a.slice(2)}"`)).fast).toMatchObject({ error: expect.stringMatching(/invalid id/) });
  });

  it('reads a large index the same both ways', () => {
    const packs = Array.from({ length: 40 }, (_, p) => {
      let offset = 0;
      return {
        id: id(`pack${p}`),
        blobs: Array.from({ length: 300 }, (_, i) => {
          const b = { id: id(`${p}/${i % 250}`), type: i % 7 ? ('data' as const) : ('tree' as const), offset, length: 100 + i, ...(i % 3 ? { uncompressed_length: 1000 + i } : {}) };
          offset += b.length;
          return b;
        }),
      };
    });
    const text = JSON.stringify({ packs });
    expect(scanIndex(Buffer.from(text))?.count).toBe(12_000);
    const { fast, viaJSON } = bothWays(text);
    expect(fast).toEqual(viaJSON);
    const distinct = new Set(packs.flatMap((p) => p.blobs.map((b) => `${b.type}:${b.id}`)));
    expect((fast as { size: number }).size).toBe(1 + distinct.size);
  });
});

describe('rows of an index file', () => {
  it('are the same whether the file was scanned or, in another spelling, parsed as JSON', () => {
    const canonical = Buffer.from(JSON.stringify(sample()));
    const spaced = Buffer.from(JSON.stringify(sample(), null, 1));
    expect(scanIndex(spaced)).toBeNull();
    const scanned = new MasterIndex().addIndexText(canonical, 'a');
    const parsed = new MasterIndex().addIndexText(spaced, 'b');
    expect(parsed.packs).toEqual(scanned.packs);
    expect(parsed.count).toBe(scanned.count);
    expect(Array.from(parsed.rows.subarray(0, parsed.count * ROW_WORDS))).toEqual(Array.from(scanned.rows.subarray(0, scanned.count * ROW_WORDS)));
    expect(scanned.count).toBe(5);
  });
});
