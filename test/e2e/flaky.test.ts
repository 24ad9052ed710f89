import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Archiver } from '../../src/archiver/archiver.js';
import { FaultyBackend } from '../../src/backend/faulty.js';
import { LocalBackend } from '../../src/backend/local.js';
import { RetryBackend } from '../../src/backend/retry.js';
import { Repository } from '../../src/repository/repository.js';
import { WorkerPool } from '../../src/repository/worker-pool.js';
import { restoreTree } from '../../src/restorer/restorer.js';
import { HAVE_RESTIC, makeRepoPaths, ok, restic, tempDir } from '../support/tools.js';
import { compareTrees, describeTree, seededBytes, textBytes } from '../support/trees.js';

describe('flaky storage', () => {
  it('a backup through a backend that fails 10% of calls and stalls now and then completes and restores identical', async () => {
    const paths = await makeRepoPaths();
    const src = await tempDir();
    for (let i = 0; i < 40; i++) await fs.writeFile(path.join(src, `r${i}`), seededBytes(i, 300_000 + i * 10_000));
    for (let i = 0; i < 200; i++) await fs.writeFile(path.join(src, `t${i}.txt`), textBytes(i, 5_000));
    const password = (await fs.readFile(paths.passwordFile, 'utf8')).split('\n')[0];
    const flaky = new FaultyBackend(new LocalBackend(paths.dir), { failRate: 0.1, stallRate: 0.03, stallMs: 150, shortReadRate: 0.05, seed: 42 });
    const backend = new RetryBackend(flaky, { baseDelayMs: 5, maxDelayMs: 50 });
    const repo = await Repository.init(backend, password, { kdf: { N: 1024, r: 8, p: 1 } });
    const pool = new WorkerPool(repo, { packSize: 512 * 1024 });
    try {
      const result = await new Archiver(repo, pool, { paths: [src] }).run();
      expect(result.errors).toEqual([]);
      const target = await tempDir();
      const r = await restoreTree(repo, pool, result.snapshot.tree, '/', { target });
      expect(r.errors).toEqual([]);
      expect(compareTrees(await describeTree(src), await describeTree(path.join(target, src)), 1000n)).toEqual([]);
    } finally {
      await pool.close();
    }
    expect(flaky.faults).toBeGreaterThan(5);
    if (HAVE_RESTIC) ok(await restic(paths, ['check', '--read-data']), 'restic check');
  });
});
