import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../backend/local.js';
import { Repository } from './repository.js';
import { MAX_BLOBS_PER_INDEX, type IndexJSON } from './master-index.js';
import type { PackedBlob } from './pack.js';
import { tempDir } from '../../test/support/tools.js';

/** A pack file's bytes do not matter here: only what the repository records of its blobs. */
async function savePack(repo: Repository, blobs: number): Promise<void> {
  const list: PackedBlob[] = Array.from({ length: blobs }, (_, i) => ({ id: randomBytes(32).toString('hex'), type: 'data', offset: i * 100, length: 100 }));
  await repo.savePack(randomBytes(32).toString('hex'), Buffer.alloc(1), list);
}

describe('index files written along a backup', () => {
  it('are due once the packs saved since the last ones hold a full index file of blobs, or after 64 packs', async () => {
    const dir = await tempDir();
    const repo = await Repository.init(new LocalBackend(dir), 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
    // Many small files: few packs, many blobs.
    await savePack(repo, MAX_BLOBS_PER_INDEX / 2);
    expect(repo.indexDue).toBe(false);
    await savePack(repo, MAX_BLOBS_PER_INDEX / 2);
    expect(repo.indexDue).toBe(true);
    expect(await repo.writeIndex()).toHaveLength(1);
    expect(repo.indexDue).toBe(false);
    // Large files: many packs, few blobs.
    for (let i = 0; i < 63; i++) await savePack(repo, 2);
    expect(repo.indexDue).toBe(false);
    await savePack(repo, 2);
    expect(repo.indexDue).toBe(true);
    const [id] = await repo.writeIndex();
    const index = await repo.loadJSON<IndexJSON>('index', id);
    expect(index.packs).toHaveLength(64);
    expect(await fs.readdir(path.join(dir, 'index'))).toHaveLength(2);
  });
});
