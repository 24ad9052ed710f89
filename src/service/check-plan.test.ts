/**
 * Scheduled and on-demand checks of a plan's repository in a daemon in this process: validation,
 * the schedule, rotating groups that read every pack once, damage reported (job, webhook, status,
 * metrics) and never retried, a repository not made yet, and backups left alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Daemon } from './daemon.js';
import type { JobRecord } from './catalog.js';
import { tempDir } from '../../test/support/tools.js';
import { waitFor } from '../../test/support/daemon.js';
import { startInProcessDaemon } from '../../test/support/in-process-daemon.js';
import { seededBytes } from '../../test/support/trees.js';

process.env.CAIRN_KDF_N = '1024';

interface CheckResult {
  readData: string;
  group?: number;
  packs: number;
  packsRead: number;
  bytesRead: number;
  snapshots: number;
  problems: number;
  errors: string[];
  skipped?: string;
}

describe('checks of plan repositories', () => {
  let d: Daemon;
  let base: string;
  let src: string;
  let server: http.Server;
  let webhook = '';
  const notes: Record<string, unknown>[] = [];

  const api = async <T = Record<string, unknown>>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${d.url}${route}`, { method, headers: { authorization: `Bearer ${d.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as T };
  };
  const finished = (id: string) =>
    waitFor(`job ${id} to finish`, async () => {
      const j = await d.catalog.getJob(id);
      return j && ['done', 'failed', 'cancelled'].includes(j.state) ? j : null;
    }, 30_000);
  const resultOf = (j: JobRecord) => j.tasks[0].result as CheckResult;

  beforeAll(async () => {
    base = await tempDir();
    src = path.join(base, 'src');
    await fs.mkdir(src);
    // Several data packs: files of 3 MiB of noise each.
    for (let i = 0; i < 6; i++) await fs.writeFile(path.join(src, `f${i}.bin`), seededBytes(i, 3 * 1024 * 1024));
    for (let i = 0; i < 50; i++) await fs.writeFile(path.join(src, `small${i}.txt`), `note ${i}\n`.repeat(i + 1));
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        notes.push(JSON.parse(body) as Record<string, unknown>);
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    webhook = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    d = await startInProcessDaemon(base);
  });
  afterAll(async () => {
    await d?.stop();
    server?.close();
  });

  it('refuses checks it cannot run, naming the field', async () => {
    const bad = async (plan: Record<string, unknown>) => {
      const r = await api<{ error: { code: string; message: string } }>('POST', '/api/v1/plans', { name: 'bad', sources: [{ path: src }], ...plan });
      expect(r.status).toBe(400);
      return r.body.error.message;
    };
    expect(await bad({ check: { schedule: 'every day' } })).toMatch(/check\.schedule: invalid cron expression "every day"/);
    expect(await bad({ check: { schedule: '0 3 * * *', readData: 'lots' } })).toMatch(/check\.readData: invalid readData "lots".*next\/t/);
    expect(await bad({ check: { schedule: '0 3 * * *', readData: 'next/0' } })).toMatch(/check\.readData: .*between 1 and 256/);
    expect(await bad({ target: `archive:${path.join(base, 'copies')}`, check: { schedule: '0 3 * * *' } })).toMatch(/check: checks read a repository; an archive target has none/);
    expect(await bad({ check: { readData: true } })).toMatch(/check\.schedule/);
    // On demand too.
    expect((await api('POST', '/api/v1/plans', { name: 'copies', sources: [{ path: src }], target: `archive:${path.join(base, 'copies')}` })).status).toBe(201);
    const r = await api<{ error: { code: string; message: string } }>('POST', '/api/v1/plans/copies/check', {});
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/archive target, which has no repository to check/);
    expect((await api('POST', '/api/v1/plans/nosuch/check', {})).status).toBe(404);
    expect((await api('POST', '/api/v1/plans/copies/check', { readData: 'half' })).status).toBe(400);
  });

  it('a repository no backup has made yet is skipped, not created', async () => {
    const repo = path.join(base, 'not-yet');
    expect((await api('POST', '/api/v1/plans', { name: 'fresh', sources: [{ path: src }], target: repo })).status).toBe(201);
    const j = await finished((await d.runCheck('fresh')).id);
    expect(j).toMatchObject({ kind: 'check', state: 'done' });
    expect(resultOf(j).skipped).toMatch(/does not exist yet/);
    await expect(fs.stat(repo)).rejects.toThrow(/ENOENT/);
  });

  it('runs on its schedule, apart from backups: a passing check is no backup success', async () => {
    const repo = path.join(base, 'sched');
    const plan = { name: 'sched', sources: [{ path: src }], target: repo, schedule: '0 0 1 1 *', maxAge: '1h' };
    expect((await api('POST', '/api/v1/plans', plan)).status).toBe(201);
    const backup = await finished((await d.runPlan('sched')).id);
    expect(backup.state).toBe('done');
    // Every second.
    expect((await api('PUT', '/api/v1/plans/sched', { ...plan, check: { schedule: '* * * * * *' } })).status).toBe(200);
    const check = await waitFor('a scheduled check', async () => (await d.catalog.listJobs({ plan: 'sched', kind: 'check', state: 'done' }))[0]);
    // The next ones wait for nobody: take the schedule away again.
    expect((await api('PUT', '/api/v1/plans/sched', plan)).status).toBe(200);
    expect(check.trigger).toBe('schedule');
    expect(check.tasks.map((t) => t.name)).toEqual(['check']);
    const r = resultOf(check);
    expect(r).toMatchObject({ readData: 'none', packsRead: 0, bytesRead: 0, snapshots: 1, problems: 0, errors: [] });
    expect(r.packs).toBeGreaterThan(2);
    const status = (await api<{ status: { lastSuccess: string; lastRun: { job: string }; check: { lastSuccess: string; problems: number; schedule: string | null } } }>('GET', '/api/v1/plans/sched')).body.status;
    expect(status.lastSuccess).toBe(backup.finishedAt);
    expect(status.lastRun.job).toBe(backup.id);
    expect(status.check).toMatchObject({ problems: 0, schedule: null });
    expect(Date.parse(status.check.lastSuccess)).toBeGreaterThanOrEqual(Date.parse(check.finishedAt!));
    const listed = (await api<{ jobs: JobRecord[] }>('GET', '/api/v1/jobs?plan=sched&kind=backup')).body.jobs;
    expect(listed.map((j) => j.id)).toEqual([backup.id]);
  });

  it('next/t reads the next group at each check: t checks read every pack once', async () => {
    const repo = path.join(base, 'rotate');
    expect((await api('POST', '/api/v1/plans', { name: 'rotate', sources: [{ path: src }], target: repo, check: { schedule: '0 3 * * *', readData: 'next/3' } })).status).toBe(201);
    expect((await finished((await d.runPlan('rotate')).id)).state).toBe('done');
    const runs: CheckResult[] = [];
    for (let i = 0; i < 4; i++) {
      const j = await finished((await api<JobRecord>('POST', '/api/v1/plans/rotate/check', {})).body.id);
      expect(j.state, j.error ?? '').toBe('done');
      runs.push(resultOf(j));
    }
    expect(runs.map((r) => r.group)).toEqual([1, 2, 3, 1]);
    expect(runs.map((r) => r.readData)).toEqual(['group #1 of 3', 'group #2 of 3', 'group #3 of 3', 'group #1 of 3']);
    const packs = runs[0].packs;
    expect(runs[0].packsRead + runs[1].packsRead + runs[2].packsRead).toBe(packs);
    expect(runs[3].packsRead).toBe(runs[0].packsRead);
    let onDisk = 0;
    for (const e of await fs.readdir(path.join(repo, 'data'), { recursive: true, withFileTypes: true })) if (e.isFile()) onDisk += (await fs.stat(path.join(e.parentPath, e.name))).size;
    expect(runs[0].bytesRead + runs[1].bytesRead + runs[2].bytesRead).toBe(onDisk);
    // An on-demand check that says what to read reads it, and leaves the rotation where it was.
    const all = await finished((await d.runCheck('rotate', 'manual', true)).id);
    expect(resultOf(all)).toMatchObject({ readData: 'all', packsRead: packs, bytesRead: onDisk });
    const after = await finished((await d.runCheck('rotate')).id);
    expect(resultOf(after).group).toBe(2);
  });

  it('damage fails the check at once, and is reported by the job, the webhook, the status and the metrics', async () => {
    const repo = path.join(base, 'damaged');
    const plan = { name: 'damaged', sources: [{ path: src }], target: repo, maxAttempts: 3, notify: { webhook, onFailure: true }, check: { schedule: '0 3 * * *', readData: true } };
    expect((await api('POST', '/api/v1/plans', plan)).status).toBe(201);
    const backup = await finished((await d.runPlan('damaged')).id);
    expect(backup.state).toBe('done');
    // A byte flipped in the middle of the largest pack (a data pack).
    const files: { p: string; size: number }[] = [];
    for (const e of await fs.readdir(path.join(repo, 'data'), { recursive: true, withFileTypes: true })) if (e.isFile()) files.push({ p: path.join(e.parentPath, e.name), size: (await fs.stat(path.join(e.parentPath, e.name))).size });
    const victim = files.sort((a, b) => b.size - a.size)[0];
    const fh = await fs.open(victim.p, 'r+');
    const one = Buffer.alloc(1);
    await fh.read(one, 0, 1, victim.size >> 1);
    one[0] ^= 0x40;
    await fh.write(one, 0, 1, victim.size >> 1);
    await fh.close();
    const packId = path.basename(victim.p);

    // Without reading data the headers are whole: the structure passes.
    const shallow = await finished((await d.runCheck('damaged', 'manual', false)).id);
    expect(shallow.state).toBe('done');

    const j = await finished((await d.runCheck('damaged')).id);
    expect(j.state).toBe('failed');
    expect(j.error).toMatch(new RegExp(`^check found \\d+ problems?: .*${packId}`));
    expect(j.tasks[0]).toMatchObject({ state: 'failed', attempts: 1 });
    const r = resultOf(j);
    expect(r.problems).toBeGreaterThanOrEqual(1);
    expect(r.errors.join('\n')).toContain(packId);
    expect(r.packsRead).toBe(r.packs);

    const note = await waitFor('the webhook', () => notes.find((n) => n.job === j.id));
    expect(note).toMatchObject({ event: 'job.failed', kind: 'check', plan: 'damaged', state: 'failed' });
    expect(note.error).toBe(j.error);

    const status = (await api<{ status: { lastSuccess: string; check: { lastRun: { state: string; error: string }; problems: number; lastSuccess: string } } }>('GET', '/api/v1/plans/damaged')).body.status;
    expect(status.lastSuccess).toBe(backup.finishedAt);
    expect(status.check.lastRun).toMatchObject({ state: 'failed', error: j.error });
    expect(status.check.problems).toBe(r.problems);
    expect(status.check.lastSuccess).toBe(shallow.finishedAt);

    const metrics = await (await fetch(`${d.url}/metrics`, { headers: { authorization: `Bearer ${d.token}` } })).text();
    expect(metrics).toContain(`cairn_check_problems{plan="damaged"} ${r.problems}`);
    expect(metrics).toContain('cairn_checks_total{plan="damaged",state="failed"} 1');
    expect(metrics).toContain('cairn_checks_total{plan="damaged",state="done"} 1');
    // Checks are not counted as backups.
    expect(metrics).toContain('cairn_jobs_total{plan="damaged",state="done"} 1');
    expect(metrics).not.toContain('cairn_jobs_total{plan="damaged",state="failed"}');
    // Failed checks do not go to the retry list, which the next backup works through.
    expect((await d.catalog.retryItems('damaged')).items).toEqual([]);
  });
});
