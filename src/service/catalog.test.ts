import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { ServiceCatalog } from './catalog.js';
import { parsePlan } from './config.js';
import { tempDir } from '../../test/support/tools.js';
import { HAVE_MARIADB, HAVE_POSTGRES, freshMysqlDatabase, freshPostgresDatabase, type FreshDatabase } from '../../test/support/databases.js';

const fresh: FreshDatabase[] = [];
afterAll(async () => {
  for (const f of fresh) await f.drop();
});

async function exercise(url: string): Promise<void> {
  let cat = await ServiceCatalog.open(url);
  try {
    const plan = parsePlan({ name: 'docs', sources: [{ path: '/srv/docs', excludes: ['*.tmp'] }], schedule: '*/5 * * * *', watch: true, retention: '7d' });
    await cat.insertPlan(plan);
    await expect(cat.insertPlan(plan)).rejects.toThrow(/already exists/);
    expect((await cat.getPlan('docs'))!.plan).toEqual(plan);
    expect((await cat.setPaused('docs', true)).paused).toBe(true);
    expect((await cat.listPlans()).map((p) => [p.plan.name, p.paused])).toEqual([['docs', true]]);

    const job = await cat.createJob({ plan: 'docs', trigger: 'watch', tasks: ['backup'], changedPaths: ['/srv/docs/ä.txt'] });
    expect(job).toMatchObject({ state: 'pending', plan: 'docs', changedPaths: ['/srv/docs/ä.txt'], tasks: [{ name: 'backup', state: 'pending', attempts: 0 }] });
    await cat.updateJob(job.id, { state: 'running', startedAt: Date.now(), attempts: 1, files: 3, bytes: 5_000_000_000 });
    await cat.updateTask(job.tasks[0].id, { state: 'running', attempts: 1, result: { snapshot: 'abc' } });
    const e1 = await cat.addEvent(job.id, 'state', { state: 'running' });
    const e2 = await cat.addEvent(job.id, 'task', { task: 'backup', state: 'running' });
    expect([e1.seq, e2.seq]).toEqual([1, 2]);
    expect((await cat.listEvents(job.id, 1)).map((e) => e.data)).toEqual([{ task: 'backup', state: 'running' }]);
    expect((await cat.unfinishedJobs()).map((j) => j.id)).toEqual([job.id]);
    const other = await cat.createJob({ plan: 'other', trigger: 'manual', tasks: ['backup'] });
    await cat.updateJob(other.id, { state: 'done', finishedAt: Date.now() });
    expect((await cat.listJobs({ plan: 'docs' })).map((j) => j.id)).toEqual([job.id]);
    expect((await cat.listJobs({ state: 'done' })).map((j) => j.id)).toEqual([other.id]);
    expect((await cat.listJobs()).map((j) => j.id)).toEqual([other.id, job.id]);
    expect((await cat.lastJob('other', 'done'))!.id).toBe(other.id);
    // Checks are jobs of their own kind: a backup's last job and last success are backups'.
    expect(other.kind).toBe('backup');
    const check = await cat.createJob({ plan: 'other', kind: 'check', trigger: 'schedule', tasks: ['check'], meta: { readData: 'next/7', group: 3 } });
    await cat.updateJob(check.id, { state: 'done', finishedAt: Date.now() });
    expect((await cat.getJob(check.id))!).toMatchObject({ kind: 'check', meta: { readData: 'next/7', group: 3 } });
    expect((await cat.lastJob('other'))!.id).toBe(other.id);
    expect((await cat.lastJob('other', 'done', 'check'))!.id).toBe(check.id);
    expect((await cat.listJobs({ plan: 'other', kind: 'check' })).map((j) => j.id)).toEqual([check.id]);
    expect((await cat.listJobs({ plan: 'other', kind: 'backup' })).map((j) => j.id)).toEqual([other.id]);

    await cat.journal('docs', ['/srv/docs/a', '/srv/docs/b', '/srv/docs/a']);
    const j = await cat.journalEntries('docs');
    expect(j.paths).toEqual(['/srv/docs/a', '/srv/docs/b']);
    expect((await cat.journalCounts()).get('docs')).toBe(3);
    await cat.addRetry('docs', ['/srv/docs/locked'], 'EACCES', 3);
    expect((await cat.retryItems('docs')).items).toEqual(['/srv/docs/locked']);
  } finally {
    await cat.close();
  }

  // Everything is durable across a reopen (the daemon's restart), and migrations run once.
  cat = await ServiceCatalog.open(url);
  try {
    const [job] = await cat.unfinishedJobs();
    expect(job).toMatchObject({ state: 'running', attempts: 1, files: 3, bytes: 5_000_000_000, tasks: [{ state: 'running', result: { snapshot: 'abc' } }] });
    const j = await cat.journalEntries('docs');
    expect(j.ids).toHaveLength(3);
    await cat.clearJournal(j.ids.slice(0, 2));
    expect((await cat.journalEntries('docs')).paths).toEqual(['/srv/docs/a']);
    const r = await cat.retryItems('docs');
    await cat.clearRetries(r.ids);
    expect((await cat.retryItems('docs')).items).toEqual([]);
    expect(await cat.deletePlan('docs')).toBe(true);
    expect(await cat.deletePlan('docs')).toBe(false);
    expect(await cat.journalEntries('docs')).toEqual({ ids: [], paths: [] });
  } finally {
    await cat.close();
  }
}

describe('service catalog', () => {
  it('keeps plans, jobs, tasks, events, journal and retries on SQLite', async () => {
    await exercise(`sqlite:${path.join(await tempDir(), 'catalog.db')}`);
  });
  it.runIf(HAVE_MARIADB)('keeps plans, jobs, tasks, events, journal and retries on MariaDB', async () => {
    const f = await freshMysqlDatabase();
    fresh.push(f);
    await exercise(f.url);
  });
  it.runIf(HAVE_POSTGRES)('keeps plans, jobs, tasks, events, journal and retries on PostgreSQL', async () => {
    const f = await freshPostgresDatabase();
    fresh.push(f);
    await exercise(f.url);
  });
});
