import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { MasterIndex, SharedBlobView, type BlobLocation } from './master-index.js';
import type { BlobType, PackedBlob } from './pack.js';

const hex = (): string => randomBytes(32).toString('hex');

describe('the master index', () => {
  it('agrees with a plain map over tens of thousands of blobs of both types, duplicates and growth included', () => {
    const idx = new MasterIndex();
    const want = new Map<string, BlobLocation>();
    const tables = new Set<SharedArrayBuffer>([idx.table]);
    const ids: string[] = [];
    for (let p = 0; p < 400; p++) {
      const packId = hex();
      const blobs: PackedBlob[] = [];
      for (let i = 0; i < 100; i++) {
        // Some blobs again (another pack holds them too), some ids under the other type.
        const again = ids.length > 0 && i % 10 === 0;
        const id = again ? ids[(p * 7 + i) % ids.length] : hex();
        const type: BlobType = i % 3 === 0 ? 'tree' : 'data';
        const b: PackedBlob = { id, type, offset: i * 1000 + p, length: 900 + i, uncompressedLength: i % 2 ? undefined : 0xfffffffe - i };
        blobs.push(b);
        if (!again) ids.push(id);
        const k = MasterIndex.key(type, id);
        if (!want.has(k)) want.set(k, { packId, type, offset: b.offset, length: b.length, uncompressedLength: b.uncompressedLength });
      }
      idx.addPack(packId, blobs);
      tables.add(idx.table);
    }
    expect(tables.size).toBeGreaterThan(5);
    expect(idx.size).toBe(want.size);
    for (const id of ids) {
      for (const type of ['data', 'tree'] as const) {
        const w = want.get(MasterIndex.key(type, id));
        expect(idx.has(type, id)).toBe(w !== undefined);
        expect(idx.lookup(type, id)).toEqual(w);
      }
    }
    expect(new Map(idx.entries())).toEqual(want);
    expect(idx.has('data', hex())).toBe(false);
    expect([...idx.packIds()]).toHaveLength(400);
  });

  it('refuses ids that are not 64 hex digits and offsets that are not 32-bit, and finds no such blob', () => {
    const idx = new MasterIndex();
    const good = { id: hex(), type: 'data' as const, offset: 0, length: 10 };
    for (const bad of ['', 'zz'.repeat(32), `${hex()}00`, hex().slice(2)]) {
      expect(() => idx.addPack(hex(), [{ ...good, id: bad }])).toThrow(expect.objectContaining({ code: 'INTEGRITY', message: expect.stringMatching(/invalid id/) }));
      expect(idx.has('data', bad)).toBe(false);
      expect(idx.lookup('data', bad)).toBeUndefined();
    }
    for (const offset of [-1, 1.5, 2 ** 32, Number.NaN]) {
      expect(() => idx.addPack(hex(), [{ ...good, offset }])).toThrow(expect.objectContaining({ code: 'INTEGRITY', message: expect.stringMatching(/invalid offset or length/) }));
    }
    expect(() => idx.addIndexJSON({ packs: [{ id: hex(), blobs: [{ ...good, id: 'p1' }] }] }, 'i1')).toThrow(/invalid id "p1"/);
    idx.addPack(hex(), [good]);
    expect(idx.size).toBe(1);
    idx.clear();
    expect(idx.size).toBe(0);
    expect(idx.has('data', good.id)).toBe(false);
  });

  it('is read from another thread while this one adds: a view sees every blob its table holds, an old table what it held', async () => {
    const idx = new MasterIndex();
    const first = Array.from({ length: 500 }, () => ({ id: hex(), type: 'data' as const, offset: 1, length: 2 }));
    idx.addPack(hex(), first);
    const oldTable = idx.table;
    const later = Array.from({ length: 5000 }, () => ({ id: hex(), type: 'data' as const, offset: 3, length: 4 }));
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       parentPort.on('message', async ({ module, table, ids }) => {
         const { SharedBlobView } = await import(module);
         const view = new SharedBlobView(table);
         parentPort.postMessage(ids.map((id) => view.has('data', id)));
       });`,
      { eval: true },
    );
    try {
      const ask = (table: SharedArrayBuffer, ids: string[]) =>
        new Promise<boolean[]>((resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
          worker.postMessage({ module: new URL('./master-index.ts', import.meta.url).href.replace('/src/', '/dist/').replace(/\.ts$/, '.js'), table, ids });
        });
      const asked = ask(oldTable, first.map((b) => b.id));
      idx.addPack(hex(), later);
      expect(await asked).toEqual(first.map(() => true));
      expect(idx.table).not.toBe(oldTable);
      const all = [...first, ...later].map((b) => b.id);
      expect(await ask(idx.table, [...all, hex()])).toEqual([...all.map(() => true), false]);
      // The old table is left as it was: it knows the first blobs and none added after it was outgrown.
      const old = new SharedBlobView(oldTable);
      expect(first.every((b) => old.has('data', b.id))).toBe(true);
      expect(later.filter((b) => old.has('data', b.id)).length).toBeLessThan(later.length);
    } finally {
      await worker.terminate();
    }
  });
  it('takes a table it exported back whole, goes on adding to it, and refuses one that is not whole', () => {
    const idx = new MasterIndex();
    const packs = Array.from({ length: 30 }, () => hex());
    for (const [p, packId] of packs.entries()) {
      idx.addPack(packId, Array.from({ length: 100 }, (_, i) => ({ id: hex(), type: i % 4 ? 'data' : 'tree', offset: i, length: 10 + p, uncompressedLength: i % 2 ? 7 : undefined })));
    }
    const t = idx.exportTable();
    const again = new MasterIndex();
    again.importTable(t);
    const all = (m: MasterIndex): unknown[] => [...m.entries()].sort((a, b) => a[0].localeCompare(b[0]));
    expect(all(again)).toEqual(all(idx));
    expect(again.size).toBe(3000);
    expect([...again.packIds()]).toEqual(packs);
    // The copy is its own: neither sees what the other adds.
    const extra = hex();
    again.addPack(hex(), [{ id: extra, type: 'data', offset: 0, length: 1 }]);
    expect(again.has('data', extra)).toBe(true);
    expect(idx.has('data', extra)).toBe(false);
    expect(() => again.importTable(t)).toThrow(/not empty/);

    const refused = (bad: typeof t): void => expect(() => new MasterIndex().importTable(bad)).toThrow(expect.objectContaining({ code: 'INTEGRITY' }));
    refused({ ...t, table: t.table.slice(0, t.table.length - 12) });
    refused({ ...t, count: t.count + 1 });
    refused({ ...t, packIds: t.packIds.slice(1) });
    refused({ ...t, packIds: [...t.packIds.slice(1), t.packIds[1]] });
    // 1536 slots: not a power of two.
    refused({ ...t, count: 0, table: new Uint32Array(12 * 1536) });
  });
});
