import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MasterIndex, type IndexJSON } from '../repository/master-index.js';
import type { PackedBlob } from '../repository/pack.js';
import { PackListing } from './pack-listing.js';

type Listed = IndexJSON['packs'][number]['blobs'][number];

const newId = (): string => randomBytes(32).toString('hex');
const asPacked = (b: Listed): PackedBlob => ({ id: b.id, type: b.type, offset: b.offset, length: b.length, uncompressedLength: b.uncompressed_length });

/** Loads index files into an index and a listing, as prune does. */
function load(files: IndexJSON[]): { index: MasterIndex; listing: PackListing } {
  const index = new MasterIndex();
  const listing = new PackListing();
  files.forEach((f, i) => listing.addListed(index.addIndexText(Buffer.from(JSON.stringify(f)), `index-${i}`)));
  listing.resolve(index);
  return { index, listing };
}

describe('the pack listing', () => {
  it('lists each pack once with its blobs by offset, each once, even when index files list it twice', () => {
    const [a, b] = [newId(), newId()];
    const x: Listed = { id: newId(), type: 'data', offset: 900, length: 100, uncompressed_length: 250 };
    const y: Listed = { id: newId(), type: 'data', offset: 0, length: 900 };
    const t: Listed = { id: newId(), type: 'tree', offset: 1000, length: 50, uncompressed_length: 70 };
    // The second file lists pack a again (an interrupted prune), with one blob more, and pack b holds a copy of x.
    const { index, listing } = load([
      { packs: [{ id: a, blobs: [x, y] }] },
      { packs: [{ id: b, blobs: [{ ...x, offset: 0 }] }, { id: a, blobs: [t, y, x] }] },
    ]);
    expect(listing.packIds).toEqual([a, b]);
    expect(listing.size).toBe(6);
    const blobs = (p: number): PackedBlob[] => Array.from(listing.blobsOf(p), (e) => listing.blob(e, index));
    expect(blobs(0)).toEqual([y, x, t].map(asPacked));
    expect(blobs(1)).toEqual([asPacked({ ...x, offset: 0 })]);
    expect(listing.forIndex(0, index)).toMatchObject({ id: a, blobs: [y, x, t].map(asPacked) });

    // x is looked up in pack a, where it was listed first: that copy counts, b's does not.
    const [ex] = Array.from(listing.blobsOf(0)).filter((e) => listing.offset(e) === 900);
    const [bx] = listing.blobsOf(1);
    expect(listing.slot(ex)).toBe(listing.slot(bx));
    expect(index.locatedAt(listing.slot(ex), a, 900)).toBe(true);
    expect(index.locatedAt(listing.slot(bx), b, 0)).toBe(false);
    expect(index.slotType(listing.slot(ex))).toBe('data');
    expect(listing.has(b)).toBe(true);
    expect(listing.has(newId())).toBe(false);
    expect(() => listing.packNumber(newId())).toThrow(/is not listed/);
  });

  it('agrees with the index over tens of thousands of blobs in thousands of packs, the tables grown many times', () => {
    const files: IndexJSON[] = [];
    const expected = new Map<string, PackedBlob[]>();
    for (let f = 0; f < 8; f++) {
      const packs: IndexJSON['packs'] = [];
      for (let p = 0; p < 300; p++) {
        const id = newId();
        let offset = 0;
        const blobs: Listed[] = [];
        for (let k = 0; k < 1 + (p % 25); k++) {
          const length = 40 + ((k * 7919 + p) % 5000);
          blobs.push({ id: newId(), type: k % 5 === 0 ? 'tree' : 'data', offset, length, ...(k % 2 ? { uncompressed_length: length * 3 } : {}) });
          offset += length;
        }
        packs.push({ id, blobs: blobs.slice().reverse() });
        expected.set(id, blobs.map(asPacked));
      }
      files.push({ packs });
    }
    const { index, listing } = load(files);
    expect(listing.packIds).toHaveLength(2400);
    listing.packIds.forEach((id, p) => {
      const blobs = Array.from(listing.blobsOf(p), (e) => listing.blob(e, index));
      expect(blobs).toEqual(expected.get(id));
      for (const e of listing.blobsOf(p)) expect(index.slotId(listing.slot(e))).toBe(listing.blob(e, index).id);
    });
    expect(listing.size).toBe(index.size);
  });

  it('refuses to grow after it is resolved', () => {
    const { listing } = load([]);
    expect(() => listing.addListed({ packs: [newId()], rows: new Uint32Array(0), count: 0 })).toThrow(/after resolve/);
  });
});

describe("the index's slots", () => {
  it('find a blob by hex or bytes and type, and give back its id, type and first location', () => {
    const index = new MasterIndex();
    const id = newId();
    const [p, q] = [newId(), newId()];
    index.addPack(p, [{ id, type: 'tree', offset: 10, length: 5 }]);
    index.addPack(q, [{ id, type: 'tree', offset: 0, length: 5 }]);
    const s = index.slot('tree', id);
    expect(s).toBeGreaterThanOrEqual(0);
    expect(s).toBeLessThan(index.slots);
    expect(index.slot('tree', Buffer.from(id, 'hex'))).toBe(s);
    expect(index.slot('data', id)).toBe(-1);
    expect(index.slot('tree', 'not-hex')).toBe(-1);
    expect(index.slot('tree', Buffer.alloc(31))).toBe(-1);
    expect(index.slotId(s)).toBe(id);
    expect(index.slotType(s)).toBe('tree');
    expect(index.locatedAt(s, p, 10)).toBe(true);
    expect(index.locatedAt(s, p, 0)).toBe(false);
    expect(index.locatedAt(s, q, 0)).toBe(false);
    expect(index.locatedAt(s, newId(), 10)).toBe(false);
  });
});
