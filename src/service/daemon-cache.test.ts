/**
 * The daemon's upkeep of its local cache (DATA_DIR/cache): repositories' caches that no job used
 * for cacheMaxAgeDays go at start and once a day, never while a job runs, never with 0.
 */
import { afterEach, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pino from 'pino';
import { Daemon } from './daemon.js';
import { tempDir } from '../../test/support/tools.js';
import { waitFor } from '../../test/support/daemon.js';

process.env.CAIRN_KDF_N = '1024';

/** A repository cache folder in `dataDir`, last used `daysAgo` days ago. */
async function cacheFolder(dataDir: string, daysAgo: number): Promise<string> {
  const dir = path.join(dataDir, 'cache', randomBytes(32).toString('hex'));
  await fs.mkdir(path.join(dir, 'snapshots'), { recursive: true });
  await fs.writeFile(path.join(dir, 'index'), 'cached');
  const when = new Date(Date.now() - daysAgo * 86_400_000);
  await fs.utimes(dir, when, when);
  return dir;
}

describe('daemon cache upkeep', () => {
  let d: Daemon | undefined;
  afterEach(async () => {
    await d?.stop();
    d = undefined;
  });

  const start = async (): Promise<{ dataDir: string; base: string }> => {
    const base = await tempDir();
    const dataDir = path.join(base, 'data');
    await fs.mkdir(path.join(dataDir, 'cache'), { recursive: true });
    return { dataDir, base };
  };
  const boot = async (base: string, dataDir: string, config: Record<string, unknown>): Promise<Daemon> => {
    const configFile = path.join(base, 'cairn.json');
    await fs.writeFile(configFile, JSON.stringify({ shutdownGraceSeconds: 1, ...config }));
    d = await Daemon.start({ configFile, dataDir, listen: '127.0.0.1:0', logger: pino({ level: 'silent' }) });
    return d;
  };

  it('removes caches unused for cacheMaxAgeDays when it starts, and keeps the rest', async () => {
    const { base, dataDir } = await start();
    const old = await cacheFolder(dataDir, 40);
    const recent = await cacheFolder(dataDir, 3);
    const alsoOld = await cacheFolder(dataDir, 12);
    const foreign = path.join(dataDir, 'cache', 'notes');
    await fs.mkdir(foreign);
    await fs.utimes(foreign, new Date(0), new Date(0));
    const daemon = await boot(base, dataDir, { cacheMaxAgeDays: 10 });
    await waitFor('the old caches to go', async () => !existsSync(old) && !existsSync(alsoOld));
    expect(existsSync(recent)).toBe(true);
    // Only folders named by a repository id are caches.
    expect(existsSync(foreign)).toBe(true);
    expect(await daemon.cleanCache()).toEqual([]);
  });

  it('keeps every cache with cacheMaxAgeDays 0', async () => {
    const { base, dataDir } = await start();
    const old = await cacheFolder(dataDir, 4000);
    const daemon = await boot(base, dataDir, { cacheMaxAgeDays: 0 });
    expect(await daemon.cleanCache()).toEqual([]);
    expect(existsSync(old)).toBe(true);
  });

  it('waits while a job runs, and keeps the cache a job used', async () => {
    const { base, dataDir } = await start();
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a.txt'), 'some data');
    const release = path.join(base, 'release');
    const daemon = await boot(base, dataDir, {});
    await daemon.addPlan({ name: 'held', sources: [{ path: src }], hooks: { before: `while [ ! -e '${release}' ]; do sleep 0.05; done` } });
    const job = await daemon.runPlan('held');
    await waitFor('the job to run', async () => (await daemon.catalog.getJob(job.id))!.state === 'running');
    const old = await cacheFolder(dataDir, 45);
    expect(await daemon.cleanCache()).toEqual([]);
    expect(existsSync(old)).toBe(true);
    await fs.writeFile(release, '');
    const finished = (id: string) =>
      waitFor('the job to finish', async () => {
        const j = await daemon.catalog.getJob(id);
        return j && ['done', 'failed'].includes(j.state) ? j : null;
      }, 30_000);
    expect((await finished(job.id)).state).toBe('done');
    // A second backup reads the index the first wrote, and caches it.
    expect((await finished((await daemon.runPlan('held')).id)).state).toBe('done');
    // The jobs' own repository cache was used just now: it stays; the old one goes.
    const used = (await fs.readdir(path.join(dataDir, 'cache'))).filter((n) => /^[0-9a-f]{64}$/.test(n) && n !== path.basename(old));
    expect(used).toHaveLength(1);
    expect(await daemon.cleanCache()).toEqual([path.basename(old)]);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(path.join(dataDir, 'cache', used[0], 'index'))).toBe(true);
  });
});
