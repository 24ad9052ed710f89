import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Archiver } from '../archiver/archiver.js';
import { LocalBackend } from '../backend/local.js';
import { Repository } from './repository.js';
import { SourceError, WorkerPool, prewarmWorkers, prewarmedWorkers } from './worker-pool.js';
import { hashId } from './id.js';
import type { IndexJSON } from './master-index.js';
import { makeRepoPaths, tempDir } from '../../test/support/tools.js';
import { seededBytes } from '../../test/support/trees.js';

const openFds = () => fs.readdirSync('/proc/self/fd').length;

describe('worker pool', () => {
  it('takes workers started ahead of it: jobs sent while they load are done once they have its settings, and it starts the workers it lacks', async () => {
    const paths = await makeRepoPaths();
    const password = (await fsp.readFile(paths.passwordFile, 'utf8')).split('\n')[0];
    const repo = await Repository.init(new LocalBackend(paths.dir), password, { kdf: { N: 1024, r: 8, p: 1 } });
    prewarmWorkers(1);
    expect(prewarmedWorkers()).toBe(1);
    const pool = new WorkerPool(repo, { workers: 2 });
    try {
      // Sent at once, before the prewarmed worker has loaded or had the pool's settings.
      const chunks = [0, 1, 2, 3, 4, 5].map((i) => seededBytes(50 + i, 300_000 + i));
      const ids = chunks.map((c) => hashId(c));
      // Copies go: a chunk's own buffer is handed to the worker.
      const results = await Promise.all(chunks.map((c) => pool.saveBuffer(Buffer.from(c))));
      expect(prewarmedWorkers()).toBe(0);
      expect(results.map((r) => r.content)).toEqual(ids.map((id) => [id]));
      await pool.flush();
      for (const [i, c] of chunks.entries()) expect((await repo.loadBlob('data', ids[i])).equals(c)).toBe(true);
    } finally {
      await pool.close();
      await repo.close();
    }
  });

  it('prewarmed workers no pool takes do not keep the process alive, loaded or not', async () => {
    const url = new URL('../../dist/repository/worker-pool.js', import.meta.url).href;
    const script = path.join(await tempDir(), 'prewarm.mjs');
    // Loaded: a second on, both are alive and waiting for a pool's settings; the process ends all the same.
    await fsp.writeFile(script, `const m = await import(${JSON.stringify(url)}); m.prewarmWorkers(2); setTimeout(() => console.log(m.prewarmedWorkers()), Number(process.argv[2]));`);
    for (const ms of ['0', '1000']) {
      const r = spawnSync(process.execPath, [script, ms], { encoding: 'utf8', timeout: 20_000 });
      expect(r.error).toBeUndefined();
      expect(r.stdout.trim()).toBe('2');
      expect(r.status).toBe(0);
    }
  });

  it('closed while workers are in the middle of files: the backup settles, nothing stays open or staged', async () => {
    const paths = await makeRepoPaths();
    const password = (await fsp.readFile(paths.passwordFile, 'utf8')).split('\n')[0];
    const repo = await Repository.init(new LocalBackend(paths.dir), password, { kdf: { N: 1024, r: 8, p: 1 } });
    const src = await tempDir();
    for (let i = 0; i < 6; i++) await fsp.writeFile(path.join(src, `big${i}`), seededBytes(i, 24 * 1024 * 1024));
    // Small files too, in folders before and after the large ones: their batches hold files open.
    for (const d of ['a', 'z']) {
      await fsp.mkdir(path.join(src, d));
      for (let i = 0; i < 300; i++) await fsp.writeFile(path.join(src, d, `s${i}`), seededBytes(1000 + i, 20_000));
    }
    const before = openFds();
    for (let round = 0; round < 4; round++) {
      const pool = new WorkerPool(repo, { readAhead: round % 2 === 0 ? 'auto' : 'always' });
      const abort = new AbortController();
      const run = new Archiver(repo, pool, { paths: [src], signal: abort.signal }).run();
      run.catch(() => undefined);
      // Wait until a worker holds a source file open (not the folder, which the walk's scout reads
      // first), then stop everything, as a shutdown that cannot wait does.
      const t0 = Date.now();
      // Rounds 1 and 3 read ahead: z's batches are opened as they arrive, behind the large files.
      const prefix = round === 0 ? `${src}/a/` : round === 2 ? `${src}/big` : `${src}/z/`;
      while (!fs.readdirSync('/proc/self/fd').some((f) => { try { return fs.readlinkSync(`/proc/self/fd/${f}`).startsWith(prefix); } catch { return false; } }) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 1));
      abort.abort();
      await pool.close();
      await expect(run).rejects.toThrow(/interrupted|closed/);
    }
    expect(openFds()).toBe(before);
    expect(fs.readdirSync(path.join(paths.dir, 'data')).filter((n) => n.startsWith('.cairn-tmp'))).toEqual([]);
    await repo.close();
  });

  for (const readAhead of ['auto', 'always'] as const) {
    it(`saves small files in batches (reads ${readAhead === 'auto' ? 'in turn, as from a warm cache' : 'ahead, as from a cold cache'}): each file gets its own content or its own error, in any mix`, async () => {
      const paths = await makeRepoPaths();
      const password = (await fsp.readFile(paths.passwordFile, 'utf8')).split('\n')[0];
      const repo = await Repository.init(new LocalBackend(paths.dir), password, { kdf: { N: 1024, r: 8, p: 1 } });
      const src = await tempDir();
      const pool = new WorkerPool(repo, { workers: 2, readAhead });
      try {
        // 100 files (more than a batch holds), every seventh missing, every eleventh grown to
        // 200 KiB since it was listed, one a folder; sizes 0 B to 64 KiB as listed. Twice, with
        // other contents: the second wave reads into the room the first one gave back.
        for (const wave of [0, 1]) {
          const files = Array.from({ length: 100 }, (_, i) => {
            const listed = ((i + wave * 37) * 661) % (64 * 1024 + 1);
            const data = seededBytes(wave * 1000 + i, i % 11 === 5 ? 200 * 1024 : listed);
            return { path: path.join(src, `w${wave}f${i}`), listed, data, missing: i % 7 === 3, folder: i === 50 };
          });
          for (const f of files) {
            if (f.folder) await fsp.mkdir(f.path);
            else if (!f.missing) await fsp.writeFile(f.path, f.data);
          }
          const results = await Promise.allSettled(files.map((f) => pool.saveSmallFile(f.path, f.listed)));
          results.forEach((r, i) => {
            const f = files[i];
            if (f.missing || f.folder) {
              expect(r.status).toBe('rejected');
              const err = (r as PromiseRejectedResult).reason as SourceError;
              expect(err).toBeInstanceOf(SourceError);
              expect(err.errno).toBe(f.folder ? 'EISDIR' : 'ENOENT');
              if (f.missing) expect(err.message).toContain(`w${wave}f${i}`);
            } else {
              expect(r.status).toBe('fulfilled');
              const saved = (r as PromiseFulfilledResult<{ size: number; content: string[] }>).value;
              expect(saved.size).toBe(f.data.length);
              expect(saved.content).toEqual(f.data.length === 0 ? [] : [hashId(f.data)]);
            }
          });
        }
        await pool.flush();
        // Every source file was closed, those that failed too.
        const open = fs.readdirSync('/proc/self/fd').filter((fd) => {
          try {
            return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${src}/`);
          } catch {
            return false;
          }
        });
        expect(open).toEqual([]);
      } finally {
        await pool.close();
        await repo.close();
      }
    });
  }
  it('copies of a file read at once by different workers are stored once (the index lists each blob once)', async () => {
    const paths = await makeRepoPaths();
    const password = (await fsp.readFile(paths.passwordFile, 'utf8')).split('\n')[0];
    const repo = await Repository.init(new LocalBackend(paths.dir), password, { kdf: { N: 1024, r: 8, p: 1 } });
    const src = await tempDir();
    // 20 contents, 30 copies each, interleaved over folders, small and large files: both workers meet every one.
    for (let d = 0; d < 30; d++) {
      await fsp.mkdir(path.join(src, `d${d}`));
      for (let c = 0; c < 20; c++) await fsp.writeFile(path.join(src, `d${d}`, `f${c}`), seededBytes(c, c < 15 ? 30_000 : 700_000));
    }
    const pool = new WorkerPool(repo, { workers: 2 });
    try {
      await new Archiver(repo, pool, { paths: [src] }).run();
    } finally {
      await pool.close();
    }
    const listed: string[] = [];
    for (const id of await repo.listIds('index')) {
      const idx = await repo.loadJSON<IndexJSON>('index', id);
      for (const p of idx.packs) for (const b of p.blobs) if (b.type === 'data') listed.push(b.id);
    }
    // The larger contents may be cut in two chunks: at least one blob per content, each listed once.
    expect(new Set(listed).size).toBeGreaterThanOrEqual(20);
    expect(listed.length).toBe(new Set(listed).size);
    await repo.close();
  });

  // A real full disk: a small tmpfs (root only, as in CI).
  it.runIf(process.getuid?.() === 0)('fails as a whole once a worker loses a pack (a full disk): files other workers took from it would name blobs never saved', async () => {
    const disk = await tempDir();
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', disk]).status).toBe(0);
    try {
      const repo = await Repository.init(new LocalBackend(path.join(disk, 'repo')), 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
      const src = await tempDir();
      await fsp.writeFile(path.join(src, 'big'), seededBytes(1, 4 * 1024 * 1024));
      await fsp.writeFile(path.join(src, 'small'), seededBytes(2, 100_000));
      const pool = new WorkerPool(repo, { workers: 1 });
      try {
        await expect(pool.saveFile(path.join(src, 'big'))).rejects.toThrow(/no space left on device|ENOSPC/);
        // Room again, but the pool stays failed: nothing more is saved through it.
        await fsp.rm(path.join(disk, 'repo', 'data'), { recursive: true, force: true });
        await fsp.mkdir(path.join(disk, 'repo', 'data'));
        await expect(pool.saveFile(path.join(src, 'small'))).rejects.toThrow(/no space left on device|ENOSPC/);
      } finally {
        await pool.close();
        await repo.close();
      }
    } finally {
      spawnSync('umount', [disk]);
    }
  });
});
