/**
 * Must-show 4: a client of a job's server-sent events sees progress and state changes; SIGTERM
 * during a long job exits 0 with the job recorded as pending, and the job resumes after a restart
 * and ends `done`, which its event stream shows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { HAVE_RESTIC, ok, runCommand, tempDir } from '../support/tools.js';
import { followEvents, startDaemon, waitFor, type DaemonProcess, type SseEvent } from '../support/daemon.js';

interface Job {
  id: string;
  state: string;
  attempts: number;
  error: string | null;
  bytes: number;
  tasks: { state: string; result: { snapshot?: string } | null }[];
}

const FILES = 10;
const FILE_BYTES = 48 * 1024 * 1024;

describe.runIf(HAVE_RESTIC)('daemon events and shutdown (must-show 4)', () => {
  let d: DaemonProcess;
  let src: string;
  const config = { shutdownGraceSeconds: 0.2 };

  beforeAll(async () => {
    src = path.join(await tempDir(), 'big');
    await fs.mkdir(src);
    // Incompressible data, so the backup takes a while on any machine.
    for (let i = 0; i < FILES; i++) {
      const fh = await fs.open(path.join(src, `f${i}.bin`), 'w');
      for (let off = 0; off < FILE_BYTES; off += 4 << 20) await fh.write(randomBytes(4 << 20));
      await fh.close();
    }
    d = await startDaemon({ config });
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('streams progress, stops cleanly on SIGTERM and resumes the job after a restart', async () => {
    expect((await d.api('POST', '/api/v1/plans', { name: 'big', sources: [{ path: src }] })).status).toBe(201);
    const run = await d.api<Job>('POST', '/api/v1/plans/big/run');
    expect(run.status).toBe(202);
    const id = run.body.id;

    // Follow the job; SIGTERM as soon as it has made progress.
    let terminated: Promise<number | string> | null = null;
    const first = await followEvents(`${d.url}/api/v1/jobs/${id}/events`, d.token, (e) => {
      if (e.event === 'progress' && Number(e.data.bytes) > 0 && !terminated) terminated = d.stop('SIGTERM');
    });
    expect(terminated, 'progress was seen before the job ended').not.toBeNull();
    const t0 = Date.now();
    expect(await terminated!).toBe(0);
    expect(Date.now() - t0).toBeLessThan(15_000);
    const kinds = (es: SseEvent[]) => es.map((e) => (e.event === 'state' ? `state:${String(e.data.state)}` : e.event));
    expect(kinds(first)).toContain('state:pending');
    expect(kinds(first)).toContain('state:running');
    expect(kinds(first)).toContain('progress');
    expect(first.at(-1)).toMatchObject({ event: 'state', data: { state: 'pending', note: expect.stringMatching(/interrupted by shutdown/) } });
    expect(first.every((e) => e.data.job === id)).toBe(true);

    d = await startDaemon({ dataDir: d.dataDir, config });
    const second = await followEvents(`${d.url}/api/v1/jobs/${id}/events`, d.token);
    // A stream opened late replays what happened before (with ids), then follows to the end.
    expect(second.filter((e) => e.id).map((e) => Number(e.id))).toEqual(second.filter((e) => e.id).map((_e, i) => i + 1));
    expect(second.at(-1)).toMatchObject({ event: 'state', data: { state: 'done', job: id } });
    expect(kinds(second)).toContain('progress');

    const job = (await d.api<Job>('GET', `/api/v1/jobs/${id}`)).body;
    expect(job).toMatchObject({ state: 'done', attempts: 2, error: null, bytes: FILES * FILE_BYTES });
    const snapshot = job.tasks[0].result!.snapshot!;
    const restic = await runCommand('restic', ['-r', path.join(d.dataDir, 'repo'), 'snapshots', '--json'], { env: { RESTIC_PASSWORD_FILE: path.join(d.dataDir, 'repo-password'), RESTIC_CACHE_DIR: path.join(d.dataDir, '..', 'rc') } });
    const ids = (JSON.parse(ok(restic, 'restic snapshots').out) as { id: string }[]).map((s) => s.id);
    expect(ids).toEqual([snapshot]);

    // Events of a finished job: the whole history, then the stream ends.
    const replay = await waitFor('a replay', () => followEvents(`${d.url}/api/v1/jobs/${id}/events`, d.token));
    expect(replay.at(-1)).toMatchObject({ event: 'state', data: { state: 'done' } });
  });
});
