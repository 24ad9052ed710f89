import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Archiver } from '../archiver/archiver.js';
import { LocalBackend } from '../backend/local.js';
import { Repository } from './repository.js';
import { SourceError, WorkerPool } from './worker-pool.js';
import { hashId } from './id.js';
import { makeRepoPaths, tempDir } from '../../test/support/tools.js';
import { seededBytes } from '../../test/support/trees.js';

const openFds = () => fs.readdirSync('/proc/self/fd').length;

describe('worker pool', () => {
  it('closed while workers are in the middle of files: the backup settles, nothing stays open or staged', async () => {
    const paths = await makeRepoPaths();
    const password = (await fsp.readFile(paths.passwordFile, 'utf8')).split('\n')[0];
    const repo = await Repository.init(new LocalBackend(paths.dir), password, { kdf: { N: 1024, r: 8, p: 1 } });
    const src = await tempDir();
    for (let i = 0; i < 6; i++) await fsp.writeFile(path.join(src, `big${i}`), seededBytes(i, 24 * 1024 * 1024));
    const before = openFds();
    for (let round = 0; round < 3; round++) {
      const pool = new WorkerPool(repo);
      const abort = new AbortController();
      const run = new Archiver(repo, pool, { paths: [src], signal: abort.signal }).run();
      run.catch(() => undefined);
      // Wait until a worker holds a source file open (not the folder, which the walk's scout reads
      // first), then stop everything, as a shutdown that cannot wait does.
      const t0 = Date.now();
      while (!fs.readdirSync('/proc/self/fd').some((f) => { try { return fs.readlinkSync(`/proc/self/fd/${f}`).startsWith(`${src}/big`); } catch { return false; } }) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 5));
      abort.abort();
      await pool.close();
      await expect(run).rejects.toThrow(/interrupted|closed/);
    }
    expect(openFds()).toBe(before);
    expect(fs.readdirSync(path.join(paths.dir, 'data')).filter((n) => n.startsWith('.cairn-tmp'))).toEqual([]);
    await repo.close();
  });

  it('saves small files in batches: each file gets its own content or its own error, in any mix', async () => {
    const paths = await makeRepoPaths();
    const password = (await fsp.readFile(paths.passwordFile, 'utf8')).split('\n')[0];
    const repo = await Repository.init(new LocalBackend(paths.dir), password, { kdf: { N: 1024, r: 8, p: 1 } });
    const src = await tempDir();
    const pool = new WorkerPool(repo, { workers: 2 });
    try {
      // 100 files (more than a batch holds), every seventh missing; sizes 0 B to 64 KiB.
      const files = Array.from({ length: 100 }, (_, i) => ({ path: path.join(src, `f${i}`), data: seededBytes(i, (i * 661) % (64 * 1024 + 1)), missing: i % 7 === 3 }));
      for (const f of files) if (!f.missing) await fsp.writeFile(f.path, f.data);
      const results = await Promise.allSettled(files.map((f) => pool.saveSmallFile(f.path, f.data.length)));
      results.forEach((r, i) => {
        const f = files[i];
        if (f.missing) {
          expect(r.status).toBe('rejected');
          const err = (r as PromiseRejectedResult).reason as SourceError;
          expect(err).toBeInstanceOf(SourceError);
          expect(err.errno).toBe('ENOENT');
          expect(err.message).toContain(`f${i}`);
        } else {
          expect(r.status).toBe('fulfilled');
          const saved = (r as PromiseFulfilledResult<{ size: number; content: string[] }>).value;
          expect(saved.size).toBe(f.data.length);
          expect(saved.content).toEqual(f.data.length === 0 ? [] : [hashId(f.data)]);
        }
      });
      await pool.flush();
    } finally {
      await pool.close();
      await repo.close();
    }
  });
});
