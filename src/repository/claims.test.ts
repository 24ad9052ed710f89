import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { BlobClaims, newClaimTable } from './claims.js';

const ids = (n: number): string[] => Array.from({ length: n }, () => randomBytes(32).toString('hex'));

describe('blob claims', () => {
  it('the first claim of an id wins, later ones (the same thread too) do not; other ids are free', () => {
    const table = newClaimTable();
    const a = new BlobClaims(table);
    const b = new BlobClaims(table);
    const [x, y] = ids(2);
    expect(a.claim(x)).toBe(true);
    expect(b.claim(x)).toBe(false);
    expect(a.claim(x)).toBe(false);
    expect(b.claim(y)).toBe(true);
    expect(a.claim(y)).toBe(false);
  });

  it('never fills up: after 16,384 claims an epoch ends and earlier claims are forgotten (a duplicate at worst)', () => {
    const c = new BlobClaims(newClaimTable());
    const first = ids(16_384);
    expect(first.every((id) => c.claim(id))).toBe(true);
    // The epoch moved on with the last of them: every id may be claimed again, once.
    expect(first.slice(0, 1000).every((id) => c.claim(id))).toBe(true);
    expect(first.slice(0, 1000).some((id) => c.claim(id))).toBe(false);
    const more = ids(100_000);
    expect(more.filter((id) => c.claim(id)).length).toBe(100_000);
  });

  it('two threads claiming the same 12,000 ids at once (within an epoch): each id is claimed, almost always once', async () => {
    const table = newClaimTable();
    const list = ids(12_000);
    const url = new URL('./claims.js', import.meta.url).href.replace('/src/', '/dist/');
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      import(workerData.url).then(({ BlobClaims }) => {
        const c = new BlobClaims(workerData.table);
        const won = new Uint8Array(workerData.list.length);
        Atomics.wait(new Int32Array(workerData.start), 0, 0);
        workerData.list.forEach((id, i) => { won[i] = c.claim(id) ? 1 : 0; });
        parentPort.postMessage(won);
      });`;
    const start = new SharedArrayBuffer(4);
    const run = (): Promise<Uint8Array> =>
      new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { table, list, url, start } });
        w.once('message', (m: Uint8Array) => resolve(m));
        w.once('error', reject);
      });
    const both = [run(), run()];
    await new Promise((r) => setTimeout(r, 300));
    Atomics.store(new Int32Array(start), 0, 1);
    Atomics.notify(new Int32Array(start), 0);
    const [a, b] = await Promise.all(both);
    const claimed = list.map((_, i) => a[i] + b[i]);
    // Never lost: some thread stores every blob.
    expect(claimed.filter((n) => n === 0)).toEqual([]);
    // A stalled writer or a lost race may let a blob be stored twice, rarely.
    expect(claimed.filter((n) => n === 2).length).toBeLessThan(list.length / 100);
  });
});
