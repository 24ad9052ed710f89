/**
 * The daemon in this process (real catalog, repository, HTTP servers): HTTP export jobs with
 * per-task retries and limits, the compatible /backup routes, hooks with timeouts, webhooks and the
 * durable retry list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Daemon } from './daemon.js';
import type { JobRecord } from './catalog.js';
import { tempDir } from '../../test/support/tools.js';
import { waitFor } from '../../test/support/daemon.js';
import { startInProcessDaemon } from '../../test/support/in-process-daemon.js';
import { repoGate } from './repo-gate.js';
import { openRepository } from './backup-plan.js';
import { Lock } from '../repository/lock.js';

process.env.CAIRN_KDF_N = '1024';

describe('daemon in process', () => {
  let d: Daemon;
  let base: string;
  let server: http.Server;
  let origin: string;
  const hits: Record<string, number> = {};
  const webhooks: Record<string, unknown>[] = [];

  const api = async <T = Record<string, unknown>>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${d.url}${route}`, { method, headers: { authorization: `Bearer ${d.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as T };
  };
  const finished = (id: string) => waitFor(`job ${id} to finish`, async () => {
    const j = await d.catalog.getJob(id);
    return j && ['done', 'failed', 'cancelled'].includes(j.state) ? j : null;
  }, 30_000);

  beforeAll(async () => {
    base = await tempDir();
    server = http.createServer((req, res) => {
      const name = req.url!.slice(1);
      hits[name] = (hits[name] ?? 0) + 1;
      if (name === 'hook') {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => {
          webhooks.push(JSON.parse(body) as Record<string, unknown>);
          res.end();
        });
        return;
      }
      if (name === 'flaky' && hits[name] < 3) {
        res.statusCode = 503;
        return res.end('busy');
      }
      if (name === 'gone') {
        res.statusCode = 404;
        return res.end();
      }
      // 3 MiB in 64 KiB writes: streamed, never one buffer.
      const chunk = Buffer.alloc(65536, name === 'big' ? 1 : 2);
      let left = 48;
      const write = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) return res.once('drain', write);
        }
        res.end();
      };
      write();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    d = await startInProcessDaemon(base);
  });
  afterAll(async () => {
    await d?.stop();
    server?.close();
  });

  it('runs an export job: one task per endpoint, retries, size limits, per-task status', async () => {
    const plan = {
      name: 'site-42',
      site: '42',
      sources: [
        {
          kind: 'http',
          endpoints: [
            { name: 'pages', url: `${origin}/pages` },
            { name: 'flaky', url: `${origin}/flaky`, headers: { 'x-site': '42' } },
            { name: 'big', url: `${origin}/big`, maxBytes: 1024 * 1024 },
          ],
        },
      ],
      maxAttempts: 3,
      notify: { webhook: `${origin}/hook` },
    };
    expect((await api('POST', '/api/v1/plans', plan)).status).toBe(201);
    const started = await api<JobRecord & { status: string }>('POST', '/backup', { userId: 7, siteId: '42' });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ status: 'pending', plan: 'site-42', meta: { userId: '7', siteId: '42' } });
    expect(started.body.tasks.map((t) => t.name)).toEqual(['pages', 'flaky', 'big']);

    await finished(started.body.id);
    const job = (await api<JobRecord & { status: string }>('GET', `/backup/${started.body.id}`)).body;
    expect(job.status).toBe('failed');
    const [pages, flaky, big] = job.tasks;
    expect(pages).toMatchObject({ state: 'done', attempts: 1, bytes: 48 * 65536 });
    expect(flaky).toMatchObject({ state: 'done', attempts: 3 });
    expect(big).toMatchObject({ state: 'failed', attempts: 1, error: expect.stringMatching(/larger than the limit of 1048576 bytes/) });
    expect(hits.flaky).toBe(3);

    const snaps = (await api<{ snapshots: { paths: string[]; tags: string[] }[] }>('GET', '/api/v1/snapshots?plan=site-42')).body.snapshots;
    expect(snaps.map((s) => s.paths[0]).sort()).toEqual(['/flaky', '/pages']);
    await waitFor('the failure webhook', () => webhooks.find((w) => w.job === job.id));
    expect(webhooks.find((w) => w.job === job.id)).toMatchObject({ event: 'job.failed', plan: 'site-42', state: 'failed' });
    // The endpoint that kept failing is on the durable retry list.
    expect((await d.catalog.listRetries()).map((r) => [r.plan, r.item])).toContainEqual(['site-42', 'big']);

    expect((await api('POST', '/backup', { userId: 7, siteId: 'nope' })).status).toBe(404);
    expect((await api('POST', '/backup', { userId: 7 })).status).toBe(400);
  });

  it('does not retry what cannot succeed', async () => {
    const plan = { name: 'gone', sources: [{ kind: 'http', endpoints: [{ name: 'gone', url: `${origin}/gone` }] }] };
    const job = await d.runAdhoc(plan);
    const done = await finished(job.id);
    expect(done.tasks[0]).toMatchObject({ state: 'failed', attempts: 1, error: expect.stringMatching(/answered 404/) });
  });

  it('runs hooks around a backup, fails on a hook timeout, and notifies on success when asked', async () => {
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a'), 'a');
    const marker = path.join(base, 'hook-ran');
    const plan = {
      name: 'hooked',
      sources: [{ path: src }],
      hooks: { before: `echo "$CAIRN_PLAN $CAIRN_HOOK" > ${marker}`, after: [`echo "$CAIRN_JOB" >> ${marker}`] },
      notify: { webhook: `${origin}/hook`, onSuccess: true },
    };
    expect((await api('POST', '/api/v1/plans', plan)).status).toBe(201);
    const ok = await finished((await d.runPlan('hooked')).id);
    expect(ok.state).toBe('done');
    expect(await fs.readFile(marker, 'utf8')).toBe(`hooked before\n${ok.id}\n`);
    await waitFor('the success webhook', () => webhooks.find((w) => w.job === ok.id && w.event === 'job.done'));

    const slow = { ...plan, hooks: { before: 'sleep 5', timeoutSeconds: 0.3 } };
    expect((await api('PUT', '/api/v1/plans/hooked', slow)).status).toBe(200);
    const t0 = Date.now();
    const failed = await finished((await d.runPlan('hooked')).id);
    expect(failed).toMatchObject({ state: 'failed', error: expect.stringMatching(/hook "sleep 5" timed out after 0.3 s/), tasks: [{ state: 'cancelled', attempts: 0 }] });
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('runs plans whose targets are archives and mirrors', async () => {
    const src = path.join(base, 'plain');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'notes.txt'), 'notes');
    await fs.writeFile(path.join(src, 'sub', 'data.bin'), Buffer.alloc(70_000, 5));
    const copies = path.join(base, 'copies');
    const mirror = path.join(base, 'mirror');
    expect((await api('POST', '/api/v1/plans', { name: 'copies', sources: [{ path: src }], target: `archive+zstd:${copies}` })).status).toBe(201);
    expect((await api('POST', '/api/v1/plans', { name: 'mirrored', sources: [{ path: src }], target: `mirror:${mirror}` })).status).toBe(201);
    const a = await finished((await d.runPlan('copies')).id);
    expect(a.state).toBe('done');
    const written = await fs.readdir(copies);
    expect(written).toHaveLength(1);
    expect(written[0]).toMatch(/^plain\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z\.tar\.zst$/);
    const m = await finished((await d.runPlan('mirrored')).id);
    expect(m.state).toBe('done');
    expect(await fs.readFile(path.join(mirror, 'sub', 'data.bin'))).toEqual(Buffer.alloc(70_000, 5));
    await fs.rm(path.join(src, 'notes.txt'));
    expect((await finished((await d.runPlan('mirrored')).id)).state).toBe('done');
    await expect(fs.stat(path.join(mirror, 'notes.txt'))).rejects.toThrow(/ENOENT/);
  });

  it('prunes after its retention removed snapshots, when the plan asks', async () => {
    const src = path.join(base, 'prune-src');
    await fs.mkdir(src, { recursive: true });
    expect((await api('POST', '/api/v1/plans', { name: 'pr', sources: [{ path: src }], prune: true })).status).toBe(400);
    expect((await api('POST', '/api/v1/plans', { name: 'pr', sources: [{ path: src }], retention: { last: 1 }, prune: { maxUnused: 'lots' } })).status).toBe(400);
    expect((await api('POST', '/api/v1/plans', { name: 'pr', sources: [{ path: src }], retention: { last: 1 }, prune: { maxUnused: '0%' } })).status).toBe(201);
    const dataBytes = async () => {
      let n = 0;
      for (const e of await fs.readdir(path.join(d.repository.location, 'data'), { recursive: true, withFileTypes: true }).catch(() => [])) if (e.isFile()) n += (await fs.stat(path.join(e.parentPath, e.name))).size;
      return n;
    };
    const start = await dataBytes();
    for (let i = 0; i < 3; i++) {
      await fs.writeFile(path.join(src, 'big.bin'), randomBytes(3 * 1024 * 1024));
      const j = await finished((await d.runPlan('pr')).id);
      expect(j.state, JSON.stringify(j)).toBe('done');
    }
    // Three versions were written; two were forgotten and pruned away.
    expect(await dataBytes()).toBeLessThan(start + 4 * 1024 * 1024);
    const snaps = (await api<{ snapshots: unknown[] }>('GET', '/api/v1/snapshots?plan=pr')).body.snapshots;
    expect(snaps).toHaveLength(1);
  });

  it("waits for its own prune of a repository instead of failing on its lock, and checks wait too", async () => {
    const src = path.join(base, 'gate-src');
    await fs.mkdir(src, { recursive: true });
    await fs.writeFile(path.join(src, 'f.txt'), 'gate\n');
    expect((await api('POST', '/api/v1/plans', { name: 'gated', sources: [{ path: src }], maxAttempts: 2 })).status).toBe(201);
    expect((await finished((await d.runPlan('gated')).id)).state).toBe('done');
    // What a prune of another plan holds: the daemon's gate alone, and the repository's exclusive lock.
    const leave = await repoGate.exclusive(d.repository.location);
    const repo = await openRepository({ ...d.repository, initIfMissing: false });
    const lock = await Lock.acquire(repo, true);
    try {
      const backup = await d.runPlan('gated');
      const check = await d.runCheck('gated');
      await waitFor('the backup to wait for the repository', () => repoGate.state(d.repository.location).waiting === 1);
      await new Promise((r) => setTimeout(r, 1000));
      // Past every retry the backup would have had (50 ms, then 100 ms): still waiting, not failed.
      for (const id of [backup.id, check.id]) expect((await d.catalog.getJob(id))!.state).not.toMatch(/failed|done/);
      expect(repoGate.state(d.repository.location).waiting).toBe(1);
      await lock.release();
      leave();
      for (const id of [backup.id, check.id]) {
        const j = await finished(id);
        expect(j.state, j.error ?? '').toBe('done');
        expect(j.tasks[0].attempts).toBe(1);
      }
    } finally {
      await lock.release().catch(() => undefined);
      leave();
      await repo.close();
    }
  });

  it('never runs one plan twice at once', async () => {
    const src = path.join(base, 'src');
    expect((await api('POST', '/api/v1/plans', { name: 'once', sources: [{ path: src }], hooks: { before: 'sleep 0.5' } })).status).toBe(201);
    const a = await d.runPlan('once');
    await waitFor('the first job to run', async () => (await d.catalog.getJob(a.id))!.state === 'running');
    const b = await d.runPlan('once');
    const c = await d.runPlan('once');
    // The second and third requests share the job that waits for the first to finish.
    expect(b.id).not.toBe(a.id);
    expect(c.id).toBe(b.id);
    const [ja, jb] = [await finished(a.id), await finished(b.id)];
    expect(Date.parse(jb.startedAt!)).toBeGreaterThanOrEqual(Date.parse(ja.finishedAt!));
  });

  it('cancels a waiting job at once and a running one promptly', async () => {
    const src = path.join(base, 'src');
    expect((await api('POST', '/api/v1/plans', { name: 'slow', sources: [{ path: src }], hooks: { before: 'sleep 5' } })).status).toBe(201);
    const a = await d.runPlan('slow');
    await waitFor('the job to run', async () => (await d.catalog.getJob(a.id))!.state === 'running');
    const b = await d.runPlan('slow');
    const waiting = await api<JobRecord>('POST', `/api/v1/jobs/${b.id}/cancel`);
    expect(waiting.body).toMatchObject({ state: 'cancelled', error: 'cancelled before it started' });
    const t0 = Date.now();
    const running = await api<JobRecord>('POST', `/api/v1/jobs/${a.id}/cancel`);
    expect(running.body).toMatchObject({ state: 'cancelled', tasks: [{ state: 'cancelled' }] });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect((await api('POST', `/api/v1/jobs/${a.id}/cancel`)).status).toBe(409);
  });
});
