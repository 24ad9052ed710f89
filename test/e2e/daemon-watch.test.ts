/**
 * Must-show 2: in watch mode, creates, changes, renames, moves and deletes each show in a snapshot
 * within 10 s; changes journaled before a kill -9 are backed up after the restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import { HAVE_RESTIC, ok, runCommand, tempDir } from '../support/tools.js';
import { startDaemon, waitFor, type DaemonProcess } from '../support/daemon.js';

interface Job {
  id: string;
  state: string;
  trigger: string;
  createdAt: string;
  changedPaths: string[] | null;
}

describe.runIf(HAVE_RESTIC)('daemon watch mode (must-show 2)', () => {
  let d: DaemonProcess;
  let base: string;
  let src: string;
  const restic = (args: string[]) =>
    runCommand('restic', ['-r', path.join(d.dataDir, 'repo'), ...args], { env: { RESTIC_PASSWORD_FILE: path.join(d.dataDir, 'repo-password'), RESTIC_CACHE_DIR: path.join(base, 'restic-cache') } });
  const doneJobs = async (plan: string, since: number) =>
    (await d.api<{ jobs: Job[] }>('GET', `/api/v1/jobs?plan=${plan}&state=done&limit=1000`)).body.jobs.filter((j) => Date.parse(j.createdAt) >= since);
  /** The files of the plan's latest snapshot, with the content of each (restic's view). */
  const latestFiles = async (plan: string): Promise<Map<string, string>> => {
    const lines = ok(await restic(['ls', 'latest', '--tag', `plan:${plan}`, '--json']), 'restic ls').out.trim().split('\n');
    const files = new Map<string, string>();
    for (const l of lines.slice(1)) {
      const n = JSON.parse(l) as { type: string; path: string };
      if (n.type === 'file') files.set(n.path, ok(await restic(['dump', 'latest', '--tag', `plan:${plan}`, n.path]), 'restic dump').out);
    }
    return files;
  };

  /** Makes a change, then waits for a snapshot that shows it; returns the seconds it took. */
  const changeShows = async (what: string, change: () => Promise<void>, shows: (files: Map<string, string>) => boolean): Promise<number> => {
    const t0 = Date.now();
    await change();
    let seen = 0;
    await waitFor(
      `${what} in a snapshot`,
      async () => {
        const jobs = await doneJobs('docs', t0);
        if (jobs.length === seen) return false;
        seen = jobs.length;
        return shows(await latestFiles('docs'));
      },
      15_000,
      200,
    );
    return (Date.now() - t0) / 1000;
  };

  beforeAll(async () => {
    base = await tempDir();
    src = path.join(base, 'docs');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'keep.txt'), 'keep\n');
    d = await startDaemon();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('backs up each kind of change within 10 s', async () => {
    const t0 = Date.now();
    ok(await d.cli(['plan', 'add', 'docs', '--path', src, '--watch']), 'plan add --watch');
    await waitFor('the first snapshot', async () => (await doneJobs('docs', t0)).length > 0, 20_000);
    const f = (...p: string[]) => path.join(src, ...p);
    const latencies: Record<string, number> = {};
    latencies.create = await changeShows('a new file', () => fs.writeFile(f('new.txt'), 'created\n'), (files) => files.get(f('new.txt')) === 'created\n');
    latencies.modify = await changeShows('a changed file', () => fs.writeFile(f('new.txt'), 'modified!\n'), (files) => files.get(f('new.txt')) === 'modified!\n');
    latencies.rename = await changeShows('a renamed file', () => fs.rename(f('new.txt'), f('renamed.txt')), (files) => !files.has(f('new.txt')) && files.get(f('renamed.txt')) === 'modified!\n');
    latencies.move = await changeShows('a moved file', () => fs.rename(f('renamed.txt'), f('sub', 'moved.txt')), (files) => !files.has(f('renamed.txt')) && files.get(f('sub', 'moved.txt')) === 'modified!\n');
    latencies.delete = await changeShows('a deleted file', () => fs.rm(f('sub', 'moved.txt')), (files) => !files.has(f('sub', 'moved.txt')) && files.get(f('keep.txt')) === 'keep\n');
    for (const [what, s] of Object.entries(latencies)) expect(s, what).toBeLessThan(10);
    const watchJobs = (await doneJobs('docs', t0)).filter((j) => j.trigger === 'watch');
    expect(watchJobs.some((j) => (j.changedPaths ?? []).includes(f('new.txt')))).toBe(true);
  });

  it('backs up changes journaled before a kill -9 after the restart', async () => {
    const slow = path.join(base, 'slow');
    await fs.mkdir(slow);
    await fs.writeFile(path.join(slow, 'old.txt'), 'old\n');
    // A debounce of a minute keeps the change pending when the daemon dies.
    const add = await d.api('POST', '/api/v1/plans', { name: 'slow', sources: [{ path: slow }], watch: { debounceMs: 60_000, maxDelayMs: 60_000 } });
    expect(add.status).toBe(201);
    await waitFor('the first snapshot of slow', async () => (await doneJobs('slow', 0)).length > 0, 20_000);
    await fs.writeFile(path.join(slow, 'pending.txt'), 'not lost\n');
    await waitFor('the change in the journal', async () => (await d.api<{ status: { pendingChanges: number } }>('GET', '/api/v1/plans/slow')).body.status.pendingChanges > 0, 10_000);
    expect(await d.stop('SIGKILL')).toBe('SIGKILL');

    const restartedAt = Date.now();
    d = await startDaemon({ dataDir: d.dataDir });
    const job = await waitFor('a job of slow after the restart', async () => (await doneJobs('slow', restartedAt))[0], 20_000);
    expect(job.changedPaths).toContain(path.join(slow, 'pending.txt'));
    const ls = ok(await restic(['dump', 'latest', '--tag', 'plan:slow', path.join(slow, 'pending.txt')]), 'restic dump');
    expect(ls.out).toBe('not lost\n');
    expect((await d.api<{ status: { pendingChanges: number } }>('GET', '/api/v1/plans/slow')).body.status.pendingChanges).toBe(0);
  });
});
