/**
 * Must-show 1: a plan added through the CLI while the daemon runs, on a schedule of a few seconds,
 * makes snapshots restic reads; pause, resume and remove take effect without a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import { HAVE_RESTIC, ok, runCommand, tempDir } from '../support/tools.js';
import { startDaemon, waitFor, type DaemonProcess } from '../support/daemon.js';

interface Job {
  id: string;
  plan: string;
  state: string;
  trigger: string;
}

describe.runIf(HAVE_RESTIC)('daemon plans (must-show 1)', () => {
  let d: DaemonProcess;
  let src: string;
  const restic = (args: string[]) =>
    runCommand('restic', ['-r', path.join(d.dataDir, 'repo'), ...args], { env: { RESTIC_PASSWORD_FILE: path.join(d.dataDir, 'repo-password'), RESTIC_CACHE_DIR: path.join(d.dataDir, '..', 'restic-cache') } });
  const jobs = async (plan: string) => (await d.api<{ jobs: Job[] }>('GET', `/api/v1/jobs?plan=${plan}&limit=1000`)).body.jobs;
  const settled = async (plan: string) => (await jobs(plan)).every((j) => j.state !== 'running' && j.state !== 'pending');

  beforeAll(async () => {
    const base = await tempDir();
    src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'a.txt'), 'first version\n');
    await fs.writeFile(path.join(src, 'sub', 'b.bin'), Buffer.alloc(100_000, 7));
    d = await startDaemon();
  });
  afterAll(async () => {
    expect(await d?.stop()).toBe(0);
  });

  it('runs a plan added through the CLI on its schedule; restic reads the snapshots', async () => {
    const add = ok(await d.cli(['plan', 'add', 'sched', '--path', src, '--schedule', '*/2 * * * * *', '--tag', 'e2e']), 'plan add');
    expect(add.out).toMatch(/added plan sched/);
    await waitFor('two scheduled jobs done', async () => (await jobs('sched')).filter((j) => j.state === 'done' && j.trigger === 'schedule').length >= 2, 30_000);

    const snaps = JSON.parse(ok(await restic(['snapshots', '--json']), 'restic snapshots').out) as { paths: string[]; tags: string[] }[];
    expect(snaps.length).toBeGreaterThanOrEqual(2);
    expect(snaps.every((s) => s.paths[0] === src && s.tags.includes('plan:sched') && s.tags.includes('e2e'))).toBe(true);
    const target = path.join(d.dataDir, '..', 'restore');
    ok(await restic(['restore', 'latest', '--target', target]), 'restic restore');
    expect(await fs.readFile(path.join(target, src, 'a.txt'), 'utf8')).toBe('first version\n');
    expect((await fs.readFile(path.join(target, src, 'sub', 'b.bin'))).equals(Buffer.alloc(100_000, 7))).toBe(true);
    ok(await restic(['check']), 'restic check');

    const ls = ok(await d.cli(['plan', 'ls']), 'plan ls').out;
    expect(ls).toMatch(/^sched\s+(ok|running)\s+20\d\d-/m);
    const show = JSON.parse(ok(await d.cli(['--json', 'plan', 'show', 'sched']), 'plan show').out) as { status: { lastSuccess: string; nextRun: string; target: { sizeBytes: number } } };
    expect(Date.parse(show.status.nextRun)).toBeGreaterThan(Date.now() - 2000);
    expect(show.status.lastSuccess).toBeTruthy();
  });

  it('pauses, resumes and removes a plan without a restart', async () => {
    ok(await d.cli(['plan', 'pause', 'sched']), 'plan pause');
    await waitFor('paused plan to settle', () => settled('sched'));
    const paused = (await d.api<{ status: { paused: boolean; nextRun: string | null } }>('GET', '/api/v1/plans/sched')).body.status;
    expect(paused).toMatchObject({ paused: true, nextRun: null });
    const before = (await jobs('sched')).length;
    // Three schedule intervals pass without a job.
    await new Promise((r) => setTimeout(r, 6500));
    expect((await jobs('sched')).length).toBe(before);

    const resumedAt = Date.now();
    ok(await d.cli(['plan', 'resume', 'sched']), 'plan resume');
    await waitFor('a job after resume', async () => (await d.api<{ jobs: (Job & { createdAt: string })[] }>('GET', '/api/v1/jobs?plan=sched&state=done')).body.jobs.some((j) => Date.parse(j.createdAt) >= resumedAt), 15_000);

    ok(await d.cli(['plan', 'rm', 'sched']), 'plan rm');
    await waitFor('removed plan to settle', () => settled('sched'));
    const after = (await jobs('sched')).length;
    await new Promise((r) => setTimeout(r, 6500));
    expect((await jobs('sched')).length).toBe(after);
    const gone = await d.cli(['plan', 'show', 'sched']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/no plan named sched/);
  });

  it('runs a plan on demand and applies its retention', async () => {
    const r = await d.api('POST', '/api/v1/plans', { name: 'kept', sources: [{ path: src }], retention: { last: 2 } });
    expect(r.status).toBe(201);
    for (let i = 0; i < 3; i++) {
      await fs.writeFile(path.join(src, 'a.txt'), `version ${i}\n`);
      const run = ok(await d.cli(['--json', 'plan', 'run', 'kept', '--wait']), 'plan run');
      expect(JSON.parse(run.out)).toMatchObject({ state: 'done', plan: 'kept' });
    }
    const snaps = (await d.api<{ snapshots: { tags: string[] }[] }>('GET', '/api/v1/snapshots?plan=kept')).body.snapshots;
    expect(snaps).toHaveLength(2);
    const restored = path.join(d.dataDir, '..', 'restore-kept');
    ok(await restic(['restore', 'latest', '--tag', 'plan:kept', '--target', restored]), 'restic restore');
    expect(await fs.readFile(path.join(restored, src, 'a.txt'), 'utf8')).toBe('version 2\n');
  });

  it("checks a plan's repository from the CLI: on demand, with the plan's rotation, and names damage", async () => {
    ok(await d.cli(['plan', 'add', 'checked', '--path', src, '--check', '0 3 * * 0', '--check-read-data', 'next/2']), 'plan add --check');
    expect((await d.cli(['plan', 'add', 'x', '--path', src, '--check-read-data', 'all'])).stderr).toMatch(/--check-read-data needs --check/);
    const flagged = JSON.parse(ok(await d.cli(['--json', 'plan', 'add', 'flagged', '--path', src, '-x', '--ignore-inode', '--ignore-ctime', '--with-atime', '--paused']), 'plan add -x …').out) as { plan: object };
    expect(flagged.plan).toMatchObject({ oneFileSystem: true, ignoreInode: true, ignoreCtime: true, withAtime: true });
    ok(await d.cli(['plan', 'rm', 'flagged']), 'plan rm');
    ok(await d.cli(['plan', 'run', 'checked', '--wait']), 'plan run');
    const first = ok(await d.cli(['plan', 'check', 'checked', '--wait']), 'plan check');
    expect(first.out.trim()).toMatch(/^check \S+ done\n {2}\d+ snapshots, \d+ packs, \d+ read whole$/);
    const json = JSON.parse(ok(await d.cli(['--json', 'plan', 'check', 'checked', '--wait']), 'plan check --json').out) as { kind: string; state: string; tasks: { result: { group: number; readData: string } }[] };
    expect(json).toMatchObject({ kind: 'check', state: 'done', tasks: [{ result: { group: 2, readData: 'group #2 of 2' } }] });
    const show = ok(await d.cli(['plan', 'show', 'checked']), 'plan show').out;
    expect(show).toMatch(/checks: +schedule "0 3 \* \* 0", reading next\/2 of the packs/);
    expect(show).toMatch(/last check: +done at 20/);
    expect(show).toMatch(/next check: +20/);
    expect((await d.cli(['plan', 'check', 'checked', '--read-data', '--read-data-subset', '5%'])).stderr).toMatch(/cannot be used together/);

    // The daemon's repository, damaged: a pack's last byte (its header's length) rewritten.
    const packs: string[] = [];
    for (const e of await fs.readdir(path.join(d.dataDir, 'repo', 'data'), { recursive: true, withFileTypes: true })) if (e.isFile()) packs.push(path.join(e.parentPath, e.name));
    const victim = packs.sort()[0];
    const fh = await fs.open(victim, 'r+');
    const size = (await fh.stat()).size;
    await fh.write(Buffer.from([0xff, 0xff, 0xff, 0x7f]), 0, 4, size - 4);
    await fh.close();
    const bad = await d.cli(['plan', 'check', 'checked', '--read-data', '--wait']);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/^check \S+ failed: check found \d+ problems?/);
    expect(bad.out).toContain(path.basename(victim));
    expect(bad.stderr).toMatch(/check \S+ failed/);
  });
});
