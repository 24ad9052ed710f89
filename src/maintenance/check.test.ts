import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../backend/local.js';
import { Repository } from '../repository/repository.js';
import { WorkerPool } from '../repository/worker-pool.js';
import { hashId } from '../repository/id.js';
import { encodeTree } from '../repository/tree.js';
import { formatTime } from '../fs/time.js';
import { checkRepository } from './check.js';
import { readPackHeader } from './repair.js';
import type { PackedBlob } from '../repository/pack.js';

/** A new local repository holding `count` buffers of random bytes, in packs of about 1 MiB written by `workers` workers. */
async function repositoryWithData(count: number, bytes: number, workers: number): Promise<{ backend: LocalBackend; repo: Repository }> {
  process.env.CAIRN_KDF_N ??= '1024';
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-check-'));
  const backend = new LocalBackend(path.join(dir, 'repo'));
  const repo = await Repository.init(backend, 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
  const pool = new WorkerPool(repo, { workers, packSize: 1024 * 1024 });
  try {
    for (let i = 0; i < count; i++) await pool.saveBuffer(randomBytes(bytes));
    await pool.flush();
  } finally {
    await pool.close();
  }
  await repo.flush();
  return { backend, repo };
}

describe('check', () => {
  it('names every snapshot that reaches a damaged tree, even when trees are shared', async () => {
    process.env.CAIRN_KDF_N ??= '1024';
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-check-'));
    const repo = await Repository.init(new LocalBackend(path.join(dir, 'repo')), 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
    const now = formatTime(BigInt(Date.now()) * 1_000_000n);
    const missing = 'ab'.repeat(32);
    const leaf = encodeTree([{ name: 'file', type: 'file', mode: 0o644, mtime: now, atime: now, ctime: now, uid: 0, gid: 0, size: 3, content: [missing] }]);
    const { id: leafId } = await repo.saveBlob('tree', leaf);
    const mkRoot = async (name: string): Promise<string> =>
      (await repo.saveBlob('tree', encodeTree([{ name, type: 'dir', mode: 2147484141, mtime: now, atime: now, ctime: now, uid: 0, gid: 0, content: null, subtree: leafId }]))).id;
    const a = await mkRoot('a');
    const b = await mkRoot('b');
    await repo.flush();
    const sa = await repo.saveSnapshot({ time: now, tree: a, paths: ['/a'] });
    const sb = await repo.saveSnapshot({ time: now, tree: b, paths: ['/b'] });
    const r = await checkRepository(repo, null);
    // The shared tree is checked once, under whichever snapshot reaches it first.
    expect(r.errors.some((e) => new RegExp(`^file /[ab]/file \\(tree ${leafId}\\): data blob ${missing} not in the index$`).test(e))).toBe(true);
    expect(r.errors).toContain(`snapshot ${sa}: references damaged or missing data`);
    expect(r.errors).toContain(`snapshot ${sb}: references damaged or missing data`);
    expect(r.errors.filter((e) => e.includes(missing))).toHaveLength(1);
  });

  it('holds the index against the packs, with and without reading data: a listed pack that is gone, a pack no index lists, a blob listed in a pack that lacks it', async () => {
    const { backend, repo } = await repositoryWithData(3, 1536 * 1024, 2);
    const packs = [...repo.index.packIds()].sort();
    expect(packs.length).toBeGreaterThanOrEqual(3);
    const [gone, short] = packs;
    await backend.remove({ type: 'data', name: gone });
    const phantom = hashId(Buffer.from('never stored'));
    await repo.saveJSON('index', JSON.stringify({ packs: [{ id: short, blobs: [{ id: phantom, type: 'data', offset: 0, length: 64 }] }] }));
    const strayBytes = Buffer.from('not a pack');
    const stray = hashId(strayBytes);
    await backend.save({ type: 'data', name: stray }, strayBytes);

    for (const readData of [false, true]) {
      const fresh = await Repository.open(backend, 'pw');
      const checkPool = readData ? new WorkerPool(fresh) : null;
      try {
        const r = await checkRepository(fresh, checkPool, { readData });
        expect(r.errors.sort()).toEqual([`pack ${gone}: does not exist (listed in the index)`, `pack ${short}: data blob ${phantom} listed in the index is not in the pack`].sort());
        expect(r.warnings).toEqual([`pack ${stray}: not referenced in any index`]);
        expect(r.packs).toBe(packs.length);
      } finally {
        await checkPool?.close();
      }
    }
  });

  it('accepts an index that lists the blobs of a pack in another order than its header, or only some of them', async () => {
    // Blobs under the chunker's minimum stay whole: four or so to a pack.
    const { backend, repo } = await repositoryWithData(8, 300 * 1024, 1);
    const packs: { id: string; blobs: PackedBlob[] }[] = [];
    for await (const f of backend.list('data')) packs.push({ id: f.name, blobs: await readPackHeader(repo, f.name, f.size) });
    const [a, b] = packs.filter((p) => p.blobs.length >= 2);
    expect(b).toBeDefined();
    const entry = (p: { id: string }, blobs: PackedBlob[]) => ({ id: p.id, blobs: blobs.map((x) => ({ id: x.id, type: x.type, offset: x.offset, length: x.length, uncompressed_length: x.uncompressedLength })) });
    await repo.saveJSON('index', JSON.stringify({ packs: [entry(a, [...a.blobs].reverse()), entry(b, b.blobs.slice(1))] }));
    for (const readData of [false, true]) {
      const fresh = await Repository.open(backend, 'pw');
      const checkPool = readData ? new WorkerPool(fresh) : null;
      try {
        const r = await checkRepository(fresh, checkPool, { readData });
        expect(r.errors).toEqual([]);
        expect(r.warnings).toEqual([]);
      } finally {
        await checkPool?.close();
      }
    }
    // A blob moved to another offset is named.
    const moved = a.blobs[1];
    await repo.saveJSON('index', JSON.stringify({ packs: [entry(a, [{ ...moved, offset: moved.offset + 1 }])] }));
    for (const readData of [false, true]) {
      const fresh = await Repository.open(backend, 'pw');
      const checkPool = readData ? new WorkerPool(fresh) : null;
      try {
        const r = await checkRepository(fresh, checkPool, { readData });
        expect(r.errors).toEqual([`pack ${a.id}: ${moved.type} blob ${moved.id} listed in the index is not in the pack`]);
      } finally {
        await checkPool?.close();
      }
    }
  });
});
