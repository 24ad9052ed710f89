import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { LocalBackend } from '../../src/backend/local.js';
import { formatTime } from '../../src/fs/time.js';
import { Lock, type LockJSON } from '../../src/repository/lock.js';
import { Repository } from '../../src/repository/repository.js';
import { HAVE_RCLONE, startRestServer } from '../support/rest-server.js';
import { seededBytes } from '../support/trees.js';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../support/tools.js';

async function packCount(repo: TestRepo): Promise<number> {
  let n = 0;
  for (const d of await fs.readdir(path.join(repo.dir, 'data'))) if (/^[0-9a-f]{2}$/.test(d)) n += (await fs.readdir(path.join(repo.dir, 'data', d))).length;
  return n;
}

/** A local folder whose listings are taken to lag, as a network file system's or a server's may. */
class LaggingBackend extends LocalBackend {
  override listsAtOnce(): Promise<boolean> {
    return Promise.resolve(false);
  }
}

async function openRepo(repo: TestRepo, lagging = false): Promise<Repository> {
  const password = (await fs.readFile(repo.passwordFile, 'utf8')).split('\n')[0];
  return Repository.open(lagging ? new LaggingBackend(repo.dir) : new LocalBackend(repo.dir), password);
}

async function writeLock(repo: Repository, over: Partial<LockJSON>): Promise<string> {
  const l: LockJSON = { time: formatTime(BigInt(Date.now()) * 1_000_000n), exclusive: true, hostname: os.hostname(), username: 'someone', pid: process.pid, uid: 0, gid: 0, ...over };
  return repo.saveJSON('lock', JSON.stringify(l));
}

describe('locks', () => {
  it('an exclusive lock held by a live process blocks a backup with exit 11 and names the holder', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'f'), 'x');
    ok(await cairn(repo, ['init']), 'init');
    const r = await openRepo(repo);
    const sleeper = spawn('sleep', ['60']);
    try {
      const id = await writeLock(r, { pid: sleeper.pid! });
      const blocked = await cairn(repo, ['backup', src]);
      expect(blocked.code).toBe(11);
      expect(blocked.stderr).toContain(`exclusive lock ${id.slice(0, 8)} held by PID ${sleeper.pid}`);
      expect(blocked.stderr).toContain('cairn unlock');
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((res) => sleeper.once('exit', res));
    }
    // The holder is gone: its lock is stale on this host and no longer blocks.
    ok(await cairn(repo, ['backup', src]), 'backup after the holder died');
    const locks = await fs.readdir(path.join(repo.dir, 'locks'));
    expect(locks).toHaveLength(1);
    ok(await cairn(repo, ['unlock']), 'unlock');
    expect(await fs.readdir(path.join(repo.dir, 'locks'))).toHaveLength(0);
  });

  it('--retry-lock waits for a held lock: it goes on once the lock is released, and gives up with 11 when the time is up', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'f'), 'x');
    ok(await cairn(repo, ['init']), 'init');
    const r = await openRepo(repo);
    const held = await writeLock(r, { hostname: 'another-host' });
    const started = Date.now();
    const gaveUp = await cairn(repo, ['--retry-lock', '2s', 'backup', src]);
    expect(gaveUp.code).toBe(11);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(gaveUp.stderr).toContain('repository is already locked, trying again in 1 s');
    // Released while a backup waits: the backup goes on.
    const waiting = cairn(repo, ['--json', '--retry-lock', '1m', 'backup', src]);
    await new Promise((res) => setTimeout(res, 1500));
    await r.backend.remove({ type: 'lock', name: held });
    const done = ok(await waiting, 'backup after the lock went');
    expect(JSON.parse(done.out.trim().split('\n').pop()!)).toMatchObject({ message_type: 'summary' });
    const bad = await cairn(repo, ['--retry-lock', '5 minutes', 'backup', src]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid --retry-lock "5 minutes"');
  });

  it('a racing exclusive lock that appears while ours settles fails our writes with LOCKED and removes our lock', async () => {
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const r = await openRepo(repo, true);
    const ours = await Lock.begin(r, false);
    r.gateWrites(ours.confirmed);
    const racer = await writeLock(r, { pid: process.pid, exclusive: true, hostname: 'racer-host' });
    await expect(r.saveJSON('snapshot', '{}')).rejects.toMatchObject({ code: 'LOCKED' });
    expect(await fs.readdir(path.join(repo.dir, 'snapshots'))).toEqual([]);
    expect(await fs.readdir(path.join(repo.dir, 'locks'))).toEqual([racer]);
  });

  it('on a local disk a lock is confirmed at once, and of two clients racing for exclusive locks never both win', async () => {
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const [a, b] = [await openRepo(repo), await openRepo(repo)];
    expect(await a.backend.listsAtOnce!()).toBe(true);
    expect(await new LocalBackend(path.join(repo.dir, 'no-such-folder')).listsAtOnce()).toBe(false);
    // Each round either one wins or both back off (each saw the other's lock), as with restic.
    let bothWon = 0;
    for (let round = 0; round < 40; round++) {
      const results = await Promise.allSettled([a, b].map(async (r) => Lock.acquire(r, true)));
      const won = results.filter((x) => x.status === 'fulfilled').map((x) => x.value);
      for (const x of results) if (x.status === 'rejected') expect(x.reason).toMatchObject({ code: 'LOCKED' });
      if (won.length === 2) bothWon++;
      await Promise.all(won.map((l) => l.release()));
      expect(await fs.readdir(path.join(repo.dir, 'locks'))).toEqual([]);
    }
    expect(bothWon).toBe(0);
    // Alone, a client gets its lock.
    await (await Lock.acquire(a, true)).release();
  });

  it.runIf(HAVE_RCLONE)('check, restore and dump read while their lock settles, but a racing exclusive lock still stops them with 11 and nothing restored', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'f'), seededBytes(1, 100_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    const r = await openRepo(repo);
    const locksDir = path.join(repo.dir, 'locks');
    // The commands reach the repository through a REST server, whose listings are not trusted to
    // be at once, so they wait as restic does; another client's exclusive lock appears in the
    // folder as soon as the command's own lock does (inside those 200 ms).
    const server = await startRestServer(path.dirname(repo.dir));
    onTestFinished(() => server.stop());
    const remote = { env: { CAIRN_REPOSITORY: `rest:${server.url}${path.basename(repo.dir)}/` } };
    const raced = async (args: string[]) => {
      const run = cairn(repo, args, remote);
      let racer: string | null = null;
      const started = Date.now();
      while (Date.now() - started < 20_000) {
        if ((await fs.readdir(locksDir)).some((n) => !n.startsWith('.'))) {
          racer = await writeLock(r, { hostname: 'racer-host' });
          break;
        }
        await new Promise((res) => setTimeout(res, 2));
      }
      const result = await run;
      expect(racer).not.toBeNull();
      await r.backend.remove({ type: 'lock', name: racer! });
      return result;
    };
    const check = await raced(['check', '--read-data']);
    expect(check.code).toBe(11);
    expect(check.stderr).toMatch(/already locked: exclusive lock .* held by PID \d+ on racer-host/);
    expect(check.out).not.toContain('no errors were found');
    const target = path.join(await tempDir(), 'restored');
    const restore = await raced(['restore', 'latest', '--target', target]);
    expect(restore.code).toBe(11);
    await expect(fs.stat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    const dump = await raced(['dump', 'latest', path.join(src, 'f')]);
    expect(dump.code).toBe(11);
    expect(dump.out).toBe('');
    // Each left no lock of its own behind, and without a racer all three succeed.
    expect(await fs.readdir(locksDir)).toEqual([]);
    ok(await cairn(repo, ['check', '--read-data'], remote), 'check');
    ok(await cairn(repo, ['restore', 'latest', '--target', target], remote), 'restore');
    expect(await fs.readFile(path.join(target, src, 'f'))).toEqual(await fs.readFile(path.join(src, 'f')));
  });

  it('locks older than 30 minutes are stale; unlock --remove-all removes live ones too', async () => {
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const r = await openRepo(repo);
    await writeLock(r, { hostname: 'another-host', time: formatTime(BigInt(Date.now() - 31 * 60_000) * 1_000_000n) });
    ok(await cairn(repo, ['check']), 'check beside a stale lock');
    await writeLock(r, { hostname: 'another-host' });
    expect((await cairn(repo, ['check'])).code).toBe(11);
    ok(await cairn(repo, ['unlock', '--remove-all']), 'unlock --remove-all');
    ok(await cairn(repo, ['check']), 'check after unlock');
  });

  it.runIf(HAVE_RESTIC)('shares locks with restic in both directions', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'f'), 'x');
    ok(await cairn(repo, ['init']), 'init');
    const r = await openRepo(repo);
    const lock = await Lock.acquire(r, true);
    const blocked = await restic(repo, ['backup', src]);
    expect(blocked.code).not.toBe(0);
    expect(blocked.stderr).toMatch(/locked exclusively/);
    const listed = ok(await restic(repo, ['list', 'locks', '--no-lock']), 'restic list locks').out.trim();
    expect(listed).toBe(lock.id);
    await lock.release();
    const shared = await Lock.acquire(r, false);
    ok(await restic(repo, ['backup', src]), 'restic backup beside a non-exclusive lock');
    await shared.release();
    ok(await restic(repo, ['check']), 'restic check');
  });

  it('a backup interrupted with SIGINT exits 130 and leaves no lock behind', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (let i = 0; i < 100; i++) await fs.writeFile(path.join(src, `f${i}`), seededBytes(i, 2 * 1024 * 1024));
    ok(await cairn(repo, ['init']), 'init');
    const child = spawn(process.execPath, [path.resolve('dist/cli/main.js'), 'backup', src], { env: { ...process.env, ...repo.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number>((res) => child.once('exit', (c) => res(c ?? -1)));
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // Interrupt once the first pack is on disk, so the backup is surely half way.
    const started = Date.now();
    while ((await packCount(repo)) === 0 && Date.now() - started < 20_000) await new Promise((res) => setTimeout(res, 20));
    child.kill('SIGINT');
    const code = await exited;
    expect(code).toBe(130);
    expect(stderr).toMatch(/interrupted/);
    expect(await fs.readdir(path.join(repo.dir, 'locks'))).toHaveLength(0);
    // Packs the workers had staged but not finished are removed on the way out.
    expect((await fs.readdir(path.join(repo.dir, 'data'))).filter((n) => n.startsWith('.cairn-tmp-'))).toEqual([]);
    ok(await cairn(repo, ['check']), 'check after interrupt');
  });
});

describe('sharing a repository', () => {
  it.runIf(HAVE_RESTIC)('two cairn backups and one restic backup at once all succeed; prune refuses with 11 while a lock is held', async () => {
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const sources: string[] = [];
    for (let s = 0; s < 3; s++) {
      const src = await tempDir();
      for (let i = 0; i < 20; i++) await fs.writeFile(path.join(src, `f${i}`), seededBytes(s * 100 + i, 1_000_000));
      sources.push(src);
    }
    const a = cairn(repo, ['backup', sources[0]]);
    const b = cairn(repo, ['backup', sources[1]]);
    const c = restic(repo, ['backup', sources[2]]);
    const results = await Promise.all([a, b, c]);
    results.forEach((r, i) => ok(r, `backup ${i}`));
    // While a backup holds its (non-exclusive) lock, an exclusive prune must not start.
    const held = await Lock.acquire(await openRepo(repo), false);
    const pruneDuring = await cairn(repo, ['prune']);
    await held.release();
    expect(pruneDuring.code).toBe(11);
    expect(pruneDuring.stderr).toMatch(/already locked: non-exclusive lock .* held by PID \d+/);
    ok(await restic(repo, ['check', '--read-data']), 'restic check');
    ok(await cairn(repo, ['check', '--read-data']), 'cairn check');
    const snaps = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as { paths: string[] }[];
    expect(snaps.map((s) => s.paths[0]).sort()).toEqual([...sources].sort());
    for (const src of sources) {
      const t = await tempDir();
      ok(await cairn(repo, ['restore', 'latest', '--path', src, '--target', t]), `restore ${src}`);
      expect(await fs.readFile(path.join(t, src, 'f7'))).toEqual(await fs.readFile(path.join(src, 'f7')));
    }
    ok(await cairn(repo, ['prune']), 'prune afterwards');
    ok(await restic(repo, ['check']), 'restic check after prune');
  });
});
