import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, HAVE_RESTIC, cairn, haveTool, makeRepoPaths, ok, restic, runCommand, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, seededBytes } from '../support/trees.js';
import { HAVE_RCLONE, startRestServer } from '../support/rest-server.js';
import { LocalBackend } from '../../src/backend/local.js';
import { hashId } from '../../src/repository/id.js';
import type { IndexJSON } from '../../src/repository/master-index.js';
import { Repository } from '../../src/repository/repository.js';

async function packFiles(repo: TestRepo): Promise<string[]> {
  const out: string[] = [];
  for (const d of await fs.readdir(path.join(repo.dir, 'data'))) for (const f of await fs.readdir(path.join(repo.dir, 'data', d))) out.push(path.join(repo.dir, 'data', d, f));
  return out;
}

describe('bad input', () => {
  let repo: TestRepo;
  let src: string;
  beforeAll(async () => {
    repo = await makeRepoPaths();
    src = await tempDir();
    await fs.writeFile(path.join(src, 'a'), 'a');
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
  });

  it('wrong password: exit 12 and a clear message', async () => {
    const r = await cairn(repo, ['snapshots'], { env: { CAIRN_PASSWORD_FILE: '', CAIRN_PASSWORD: 'not it' } });
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(/wrong password/);
    // Commands that start their workers before the key is derived end all the same (they hung
    // until the test's time ran out while the workers kept the process alive).
    for (const args of [['check', '--read-data'], ['restore', 'latest', '--target', await tempDir()]]) {
      const w = await cairn(repo, args, { env: { CAIRN_PASSWORD_FILE: '', CAIRN_PASSWORD: 'not it' } });
      expect(w.code, args.join(' ')).toBe(12);
      expect(w.stderr).toMatch(/wrong password/);
    }
  });

  it('no repository: exit 10', async () => {
    const r = await cairn(repo, ['snapshots'], { env: { CAIRN_REPOSITORY: path.join(await tempDir(), 'nothing') } });
    expect(r.code).toBe(10);
    expect(r.stderr).toMatch(/no repository at .*run "cairn init"/);
  });

  it('a folder that is not a repository: exit 10', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'some-file'), 'x');
    const r = await cairn(repo, ['snapshots'], { env: { CAIRN_REPOSITORY: dir } });
    expect(r.code).toBe(10);
  });

  it('init over an existing repository fails and changes nothing', async () => {
    const keys = await fs.readdir(path.join(repo.dir, 'keys'));
    const r = await cairn(repo, ['init']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already exists/);
    expect(await fs.readdir(path.join(repo.dir, 'keys'))).toEqual(keys);
  });

  it('a missing source path fails with its name', async () => {
    const r = await cairn(repo, ['backup', path.join(src, 'does-not-exist')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('does-not-exist: no such file or directory');
  });

  it('a restore target that is a file fails', async () => {
    const file = path.join(await tempDir(), 'file');
    await fs.writeFile(file, 'x');
    const r = await cairn(repo, ['restore', 'latest', '--target', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/is not a directory/);
    // A target below a file: what stands in the way, not the system call's error.
    const below = await cairn(repo, ['restore', 'latest', '--target', path.join(file, 'sub', 'dir')]);
    expect(below.code).toBe(1);
    expect(below.stderr.trim()).toBe(`Fatal: cannot use ${path.join(file, 'sub', 'dir')} as the restore target: ${file} is not a folder`);
  });

  it('a restore target (or a repository) this user may not create, or on a read-only file system, fails with the reason', async () => {
    const parent = await tempDir();
    await fs.chmod(parent, 0o555);
    const r2 = await makeRepoPaths();
    await fs.chmod(path.dirname(r2.dir), 0o777);
    await fs.chmod(r2.passwordFile, 0o644);
    ok(await cairn(r2, ['init']), 'init');
    ok(await cairn(r2, ['backup', src]), 'backup');
    for (const e of await fs.readdir(r2.dir, { recursive: true })) await fs.chmod(path.join(r2.dir, e), 0o777);
    await fs.chmod(r2.dir, 0o777);
    if (process.getuid?.() === 0) {
      const denied = await cairn(r2, ['restore', 'latest', '--target', path.join(parent, 'new')], { uid: 65534, gid: 65534, env: { HOME: '/tmp' } });
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain(`Fatal: cannot create the restore target ${path.join(parent, 'new')}: permission denied: this user cannot write to ${parent}`);
      expect(denied.stderr).not.toMatch(/unexpected| {4}at /);
    }
    await onReadOnlyDisk(async (mnt) => {
      const ro = await cairn(r2, ['restore', 'latest', '--target', path.join(mnt, 'a', 'b')]);
      expect(ro.code).toBe(1);
      expect(ro.stderr).toContain(`Fatal: cannot create the restore target ${path.join(mnt, 'a', 'b')}: the file system of ${mnt} is read-only`);
      expect(ro.stderr).not.toMatch(/unexpected| {4}at /);
      // And a repository there.
      const init = await cairn(r2, ['init'], { env: { CAIRN_REPOSITORY: path.join(mnt, 'repo') } });
      expect(init.code).toBe(1);
      expect(init.stderr.trim()).toBe(`Fatal: cannot create a repository at ${path.join(mnt, 'repo')}: the file system of ${mnt} is read-only`);
    });
  });

  it('unknown and ambiguous snapshot ids fail clearly', async () => {
    const r = await cairn(repo, ['ls', 'ffffffff']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no snapshot matches "ffffffff"/);
    const bad = await cairn(repo, ['ls', 'not-an-id!']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/invalid snapshot id/);
  });

  it('an unreadable source file is reported and skipped, exit 3', async () => {
    const dir = await tempDir();
    await fs.chmod(dir, 0o777);
    await fs.writeFile(path.join(dir, 'readable'), 'ok');
    await fs.writeFile(path.join(dir, 'secret'), 'no', { mode: 0o600 });
    const r2 = await makeRepoPaths();
    await fs.chmod(path.dirname(r2.dir), 0o777);
    await fs.chmod(r2.passwordFile, 0o644);
    ok(await cairn(r2, ['init']), 'init');
    await fs.chmod(r2.dir, 0o777);
    for (const e of await fs.readdir(r2.dir, { recursive: true })) await fs.chmod(path.join(r2.dir, e), 0o777);
    const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const r = await cairn(r2, ['backup', dir], { ...asNobody, env: { HOME: '/tmp' } });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/secret.*permission denied|EACCES.*secret/i);
    const ls = ok(await cairn(r2, ['ls', 'latest']), 'ls');
    expect(ls.out).toContain(`${dir}/readable`);
    expect(ls.out).not.toContain(`${dir}/secret`);
  });
});

describe('damage', () => {
  it('a flipped byte in a pack: check names pack and blob; restore restores the rest and fails that file', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'good'), seededBytes(1, 100_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup good');
    const before = new Set(await packFiles(repo));
    await fs.writeFile(path.join(src, 'victim'), seededBytes(2, 200_000));
    ok(await cairn(repo, ['backup', src]), 'backup victim');
    const added = (await packFiles(repo)).filter((p) => !before.has(p));
    // The new packs hold the victim's data blob and a tree; damage the larger one (data).
    const sizes = await Promise.all(added.map(async (p) => [(await fs.stat(p)).size, p] as const));
    const victimPack = sizes.sort((a, b) => b[0] - a[0])[0][1];
    await fs.chmod(victimPack, 0o600);
    const bytes = await fs.readFile(victimPack);
    bytes[100] ^= 0xff;
    await fs.writeFile(victimPack, bytes);

    const check = await cairn(repo, ['check', '--read-data']);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toContain(`pack ${path.basename(victimPack)}`);
    expect(check.stderr).toMatch(/data blob [0-9a-f]{64}/);

    const target = await tempDir();
    const r = await cairn(repo, ['restore', 'latest', '--target', target]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${src}/victim: pack ${path.basename(victimPack)}`);
    expect(await fs.readFile(path.join(target, src, 'good'))).toEqual(seededBytes(1, 100_000));
    await expect(fs.access(path.join(target, src, 'victim'))).rejects.toThrow();
    // Restoring the folder alone: the file lands at the target's top, and is named by its path in the snapshot.
    const sub = await tempDir();
    const rs = await cairn(repo, ['restore', `latest:${src}`, '--target', sub]);
    expect(rs.code).not.toBe(0);
    expect(rs.stderr).toContain(`${src}/victim: pack ${path.basename(victimPack)}`);
    expect(await fs.readFile(path.join(sub, 'good'))).toEqual(seededBytes(1, 100_000));
  });

  it.runIf(HAVE_RESTIC)('check --read-data-subset reads group n of t as restic does, a share or a size, and refuses bad subsets', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    ok(await cairn(repo, ['init']), 'init');
    // One data pack and one tree pack per backup.
    for (let i = 0; i < 4; i++) {
      await fs.writeFile(path.join(src, `f${i}`), seededBytes(10 + i, 150_000));
      ok(await cairn(repo, ['backup', src]), `backup ${i}`);
    }
    const packs = await packFiles(repo);
    expect(packs.length).toBe(8);
    const sizes = await Promise.all(packs.map(async (p) => (await fs.stat(p)).size));
    const victim = packs[sizes.indexOf(Math.max(...sizes))];
    const victimId = path.basename(victim);
    await fs.chmod(victim, 0o600);
    const bytes = await fs.readFile(victim);
    bytes[100] ^= 0xff;
    await fs.writeFile(victim, bytes);
    ok(await cairn(repo, ['check']), 'check without reading data');

    const t = 3;
    for (let n = 1; n <= t; n++) {
      const hit = parseInt(victimId.slice(0, 2), 16) % t === n - 1;
      const c = await cairn(repo, ['--json', 'check', '--read-data-subset', `${n}/${t}`]);
      const r = await restic(repo, ['check', '--read-data-subset', `${n}/${t}`]);
      expect(c.code !== 0, `cairn ${n}/${t}: ${c.stderr}`).toBe(hit);
      expect(r.code !== 0, `restic ${n}/${t}: ${r.stderr}`).toBe(hit);
      if (hit) expect(c.stderr).toMatch(new RegExp(`pack ${victimId}: data blob [0-9a-f]{64}`));
      const summary = JSON.parse(c.out.trim().split('\n').pop()!) as { packs: number; packs_read: number };
      expect(summary.packs).toBe(8);
      expect(summary.packs_read).toBe(packs.filter((p) => parseInt(path.basename(p).slice(0, 2), 16) % t === n - 1).length);
    }
    const all = await cairn(repo, ['check', '--read-data-subset', '100%']);
    expect(all.code).toBe(1);
    expect(all.out).toContain('read 8 of 8 packs');
    expect(all.stderr).toContain(`pack ${victimId}`);
    // One byte, so one random pack: the damaged one one time in eight, and then check says so.
    const one = await cairn(repo, ['--json', 'check', '--read-data-subset', '1']);
    const oneSummary = one.out.trim().split('\n').map((l) => JSON.parse(l) as { message_type: string; packs_read: number; errors: string[] }).find((m) => m.message_type === 'summary')!;
    expect(oneSummary.packs_read).toBe(1);
    expect(one.code, one.stderr).toBe(oneSummary.errors.length > 0 ? 1 : 0);
    if (one.code !== 0) expect(oneSummary.errors.join('\n')).toContain(`pack ${victimId}`);

    const both = await cairn(repo, ['check', '--read-data', '--read-data-subset', '1/2']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('--read-data and --read-data-subset cannot be used together');
    for (const bad of ['0/2', '3/2', '1/300', '0%', '150%', 'half']) {
      const r = await cairn(repo, ['check', '--read-data-subset', bad]);
      expect(r.code, bad).toBe(1);
      expect(r.stderr).toContain(`invalid --read-data-subset ${JSON.stringify(bad)}`);
    }
  });

  it('a blob no index lists: check names it, restore names that file, restores the rest and exits non-zero', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const lost = seededBytes(4, 120_000);
    await fs.writeFile(path.join(src, 'good'), seededBytes(3, 100_000));
    await fs.writeFile(path.join(src, 'lost'), lost);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    // Rewrite the index without the lost file's blob (one blob: the file is under the smallest chunk).
    const r0 = await Repository.open(new LocalBackend(repo.dir), (await fs.readFile(repo.passwordFile, 'utf8')).split('\n')[0]);
    const lostId = hashId(lost);
    for (const id of await r0.listIds('index')) {
      const j = await r0.loadJSON<IndexJSON>('index', id);
      for (const p of j.packs) p.blobs = p.blobs.filter((b) => b.id !== lostId);
      await r0.backend.remove({ type: 'index', name: id });
      await r0.saveJSON('index', JSON.stringify(j));
    }

    const check = await cairn(repo, ['check']);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toContain(`file ${src}/lost`);
    expect(check.stderr).toContain(`data blob ${lostId} not in the index`);
    const target = await tempDir();
    const r = await cairn(repo, ['restore', 'latest', '--target', target]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${src}/lost: data blob ${lostId} is missing from the index`);
    expect(await fs.readFile(path.join(target, src, 'good'))).toEqual(seededBytes(3, 100_000));
    await expect(fs.access(path.join(target, src, 'lost'))).rejects.toThrow();
  });

  it('a pack gone and one cut short: restore restores every other file, names each file it cannot and why, and exits non-zero', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    ok(await cairn(repo, ['init']), 'init');
    // One backup per file: each file's data in a pack of its own (the larger of the two a backup adds).
    const dataPack: Record<string, string> = {};
    for (const [i, name] of ['a', 'b', 'c'].entries()) {
      const before = new Set(await packFiles(repo));
      await fs.writeFile(path.join(src, name), seededBytes(20 + i, 300_000));
      ok(await cairn(repo, ['backup', src]), `backup ${name}`);
      const added = await Promise.all((await packFiles(repo)).filter((p) => !before.has(p)).map(async (p) => [(await fs.stat(p)).size, p] as const));
      dataPack[name] = added.sort((x, y) => y[0] - x[0])[0][1];
    }
    await fs.rm(dataPack.a);
    await fs.chmod(dataPack.b, 0o600);
    await fs.truncate(dataPack.b, 1000);
    const target = await tempDir();
    const r = await cairn(repo, ['restore', 'latest', '--target', target]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${src}/a: pack ${path.basename(dataPack.a)}: data file ${path.basename(dataPack.a)} in ${repo.dir} does not exist`);
    expect(r.stderr).toMatch(new RegExp(`${src}/b: pack ${path.basename(dataPack.b)}: the file ends at 1000 bytes, before \\d+`));
    expect(await fs.readFile(path.join(target, src, 'c'))).toEqual(seededBytes(22, 300_000));
    for (const gone of ['a', 'b']) await expect(fs.access(path.join(target, src, gone))).rejects.toThrow();
  });

  it('a truncated pack and a truncated index are reported by check', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'f'), seededBytes(5, 300_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    const packs = await packFiles(repo);
    const biggest = (await Promise.all(packs.map(async (p) => [(await fs.stat(p)).size, p] as const))).sort((a, b) => b[0] - a[0])[0][1];
    await fs.chmod(biggest, 0o600);
    await fs.truncate(biggest, 1000);
    const check = await cairn(repo, ['check']);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toContain(path.basename(biggest));

    const idxDir = path.join(repo.dir, 'index');
    const [idx] = await fs.readdir(idxDir);
    await fs.chmod(path.join(idxDir, idx), 0o600);
    await fs.truncate(path.join(idxDir, idx), 20);
    const check2 = await cairn(repo, ['check']);
    expect(check2.code).not.toBe(0);
    expect(check2.stderr).toContain(`index ${idx}`);
  });
});

/**
 * Runs `fn` with a tmpfs of `size` mounted at a new folder, unmounted after: a real full file
 * system. Mounting needs root: elsewhere the test does nothing, and in CI a failed mount fails it.
 */
async function onSmallDisk(size: string, fn: (mnt: string) => Promise<void>): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const mnt = await tempDir();
  const mounted = await runCommand('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt]);
  if (mounted.code !== 0) {
    if (process.env.CI === 'true') throw new Error(`mount -t tmpfs failed in CI: ${mounted.stderr}`);
    return;
  }
  try {
    await fn(mnt);
  } finally {
    await runCommand('umount', [mnt]);
  }
}

/** Runs `fn` with an empty tmpfs mounted read-only at a new folder (root only, as onSmallDisk). */
async function onReadOnlyDisk(fn: (mnt: string) => Promise<void>): Promise<void> {
  await onSmallDisk('1m', async (mnt) => {
    ok(await runCommand('mount', ['-o', 'remount,ro', mnt]), 'remount read-only');
    await fn(mnt);
  });
}

describe('full disk', () => {
  it('a backup into a full file system fails clearly, leaves no temporary files, and the repository stays usable', async () => {
    await onSmallDisk('4m', async (mnt) => {
      const repo = await makeRepoPaths();
      repo.dir = path.join(mnt, 'repo');
      repo.env = { ...repo.env, CAIRN_REPOSITORY: repo.dir };
      const src = await tempDir();
      await fs.writeFile(path.join(src, 'small'), 'fits');
      ok(await cairn(repo, ['init']), 'init');
      ok(await cairn(repo, ['backup', src]), 'small backup');
      await fs.writeFile(path.join(src, 'big'), seededBytes(77, 12 * 1024 * 1024));
      const r = await cairn(repo, ['backup', src]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/no space left on device/);
      const leftovers = (await fs.readdir(repo.dir, { recursive: true })).filter((f) => String(f).includes('.tmp-'));
      expect(leftovers).toEqual([]);
      expect(await fs.readdir(path.join(repo.dir, 'locks'))).toEqual([]);
      await fs.rm(path.join(src, 'big'));
      ok(await cairn(repo, ['check']), 'check after the failure');
      expect(JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out)).toHaveLength(1);
    });
  });
});

describe('output to a full disk', () => {
  it('dump and ls into a file on a full file system fail with one message, not a crash, and leave no lock', async () => {
    await onSmallDisk('1m', async (mnt) => {
      const repo = await makeRepoPaths();
      const src = await tempDir();
      await fs.writeFile(path.join(src, 'big'), seededBytes(9, 3 * 1024 * 1024));
      for (let i = 0; i < 2000; i++) await fs.writeFile(path.join(src, `file-with-a-long-name-${i}`), '');
      ok(await cairn(repo, ['init']), 'init');
      ok(await cairn(repo, ['backup', src]), 'backup');
      // Standard output redirected to a file, as a shell does it.
      const into = (file: string, ...args: string[]) =>
        runCommand('sh', ['-c', 'f="$1"; shift; exec "$@" > "$f"', 'sh', file, process.execPath, CLI, ...args], { env: repo.env });
      const dump = await into(path.join(mnt, 'big'), 'dump', 'latest', path.join(src, 'big'));
      expect(dump.code).toBe(1);
      expect(dump.stderr).toBe('Fatal: writing standard output failed (no space left on device): the dump is incomplete\n');
      const tar = await into(path.join(mnt, 'all.tar'), 'dump', 'latest', '/');
      expect(tar.code).toBe(1);
      expect(tar.stderr).toBe('Fatal: writing standard output failed (no space left on device): the dump is incomplete\n');
      // The disk is full now: a listing that does not fit fails at the end, after the command released its lock.
      const ls = await into(path.join(mnt, 'ls.txt'), 'ls', 'latest');
      expect(ls.code).toBe(1);
      expect(ls.stderr).toBe('Fatal: writing the output failed: no space left on device\n');
      expect(await fs.readdir(path.join(repo.dir, 'locks'))).toEqual([]);
    });
  });
});

describe('full restore target', () => {
  it('a restore into a file system that fills up stops at once with one message saying how far it got, and the same restore finishes once there is room', async () => {
    // Room for some of the 2.3 MiB of small files and the 3 MiB one, not for all.
    await onSmallDisk('4m', async (mnt) => {
      const repo = await makeRepoPaths();
      const src = await tempDir();
      await fs.mkdir(path.join(src, 'small'));
      for (let i = 0; i < 300; i++) await fs.writeFile(path.join(src, 'small', `f${i}`), seededBytes(1000 + i, 8192));
      for (let i = 0; i < 20; i++) await fs.symlink(`small/f${i}`, path.join(src, `link${i}`));
      await fs.writeFile(path.join(src, 'big'), seededBytes(5, 3 * 1024 * 1024));
      ok(await cairn(repo, ['init']), 'init');
      ok(await cairn(repo, ['backup', src]), 'backup');
      const target = path.join(mnt, 'target');
      const r = await cairn(repo, ['restore', 'latest', '--target', target]);
      expect(r.code).toBe(1);
      // One line, not one per file that would not fit.
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^Fatal: the restore target is full \(no space left on device (writing|creating) \/.+\): restore stopped with (\d+) of 301 files in place; make room .* run the same restore again/);
      const placed = Number(/stopped with (\d+) of/.exec(lines[0])![1]);
      expect(placed).toBeLessThan(301);
      // Room again: the same restore finishes, and the tree is the backed-up one.
      ok(await runCommand('mount', ['-o', 'remount,size=64m', mnt]), 'remount larger');
      const again = ok(await cairn(repo, ['restore', 'latest', '--target', target, '--verify']), 'restore again');
      expect(again.stderr).toBe('');
      // What the first run put in place is kept; the rest, a partly written file among it, is written now.
      expect(again.out).toContain(`restored ${301 - placed} files`);
      expect(again.out).toMatch(new RegExp(`, ${placed} left as they were`));
      expect(compareTrees(await describeTree(src), await describeTree(path.join(target, src)), 1000n)).toEqual([]);
    });
  });
});

describe('full REST server', () => {
  it.runIf(HAVE_RCLONE)('an upload cut short by a server out of room is saved again once there is room, over what the server kept of it; restic checks the repository', async () => {
    await onSmallDisk('4m', async (mnt) => {
      // rclone serve restic over a file system too small for the backup: an upload that does not
      // fit fails (500) and leaves an empty file under the pack's name.
      const server = await startRestServer(mnt);
      try {
        const repo = await makeRepoPaths();
        const env = { ...repo.env, CAIRN_REPOSITORY: `rest:${server.url}`, RESTIC_REPOSITORY: mnt };
        const remote: TestRepo = { ...repo, dir: mnt, env };
        ok(await cairn(remote, ['init']), 'init');
        const src = await tempDir();
        await fs.writeFile(path.join(src, 'big'), seededBytes(8, 12 * 1024 * 1024));
        const backup = cairn(remote, ['backup', src]);
        const leftovers = async (): Promise<string[]> => {
          const files = await fs.readdir(path.join(mnt, 'data'), { recursive: true }).catch(() => []);
          const empty: string[] = [];
          for (const f of files) {
            const st = await fs.stat(path.join(mnt, 'data', String(f)));
            if (st.isFile() && st.size === 0) empty.push(String(f));
          }
          return empty;
        };
        for (let t = 0; (await leftovers()).length === 0; t++) {
          if (t > 2000) throw new Error(`no upload failed for want of room: ${JSON.stringify(await backup)}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        // Room again while the backup retries: the retry finds the empty file under the name and
        // writes the pack over it (it used to stop: "already exists with other content").
        ok(await runCommand('mount', ['-o', 'remount,size=64m', mnt]), 'remount larger');
        ok(await backup, 'backup');
        for (const f of await fs.readdir(path.join(mnt, 'data'), { recursive: true })) {
          const file = path.join(mnt, 'data', String(f));
          if ((await fs.stat(file)).isFile()) expect(hashId(await fs.readFile(file))).toBe(path.basename(file));
        }
        if (HAVE_RESTIC) ok(await restic(remote, ['check', '--read-data']), 'restic check');
        const target = await tempDir();
        ok(await cairn(remote, ['restore', 'latest', '--target', target]), 'restore');
        expect((await fs.readFile(path.join(target, src, 'big'))).equals(seededBytes(8, 12 * 1024 * 1024))).toBe(true);
      } finally {
        await server.stop();
      }
    });
  });
});

describe('init that fails half way', () => {
  it.runIf(HAVE_RCLONE)('an init cut short by a full server (its key saved, its config not) is no repository, and the next init finishes it with the same key; restic opens it', async () => {
    await onSmallDisk('1m', async (mnt) => {
      // Room for the key file's one page and not for the config's: rclone serve restic answers
      // 500 and keeps an empty config.
      const filler = path.join(mnt, 'filler');
      await fs.writeFile(filler, Buffer.alloc(1024 * 1024 - 4096));
      await fs.mkdir(path.join(mnt, 'repo'));
      const server = await startRestServer(path.join(mnt, 'repo'));
      try {
        const repo = await makeRepoPaths();
        const remote: TestRepo = { ...repo, dir: path.join(mnt, 'repo'), env: { ...repo.env, CAIRN_REPOSITORY: `rest:${server.url}`, RESTIC_REPOSITORY: path.join(mnt, 'repo') } };
        let pid = 0;
        const first = cairn(remote, ['init'], { onSpawn: (p) => (pid = p) });
        const config = path.join(mnt, 'repo', 'config');
        for (let t = 0; (await fs.stat(config).catch(() => null))?.size !== 0; t++) {
          if (t > 2000) throw new Error(`no empty config appeared: ${JSON.stringify(await first)}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        // The init retries, in vain; it is stopped as a crash or an impatient user would stop it.
        process.kill(pid, 'SIGKILL');
        await first;
        const keys = await fs.readdir(path.join(mnt, 'repo', 'keys'));
        expect(keys).toHaveLength(1);
        const none = await cairn(remote, ['snapshots']);
        expect(none.code).toBe(10);
        expect(none.stderr).toMatch(/no repository at rest:http:\/\/127\.0\.0\.1:\d+\/: the config file is missing/);
        await fs.rm(filler);
        ok(await cairn(remote, ['init']), 'init again');
        expect(await fs.readdir(path.join(mnt, 'repo', 'keys'))).toEqual(keys);
        expect((await fs.stat(config)).size).toBeGreaterThan(0);
        const src = await tempDir();
        await fs.writeFile(path.join(src, 'f'), 'content');
        ok(await cairn(remote, ['backup', src]), 'backup');
        if (HAVE_RESTIC) {
          ok(await restic(remote, ['check']), 'restic check');
          expect(JSON.parse(ok(await restic(remote, ['snapshots', '--json']), 'restic snapshots').out)).toHaveLength(1);
        }
      } finally {
        await server.stop();
      }
    });
  });

  it('init over keys that the password does not open, with no config, refuses and says why; with their password it finishes', async () => {
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    // What an init that failed with this password leaves: its key, and no config.
    await fs.rm(path.join(repo.dir, 'config'));
    const other = path.join(path.dirname(repo.passwordFile), 'other');
    await fs.writeFile(other, 'another password\n');
    const refused = await cairn(repo, ['init'], { env: { CAIRN_PASSWORD_FILE: other } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`Fatal: ${repo.dir} has no config but 1 key file this password does not open: what an init with another password left when it failed, or a repository whose config is lost. Run init with that password to finish it, or remove the key files if nothing else is there\n`);
    const keys = await fs.readdir(path.join(repo.dir, 'keys'));
    ok(await cairn(repo, ['init']), 'init with the first password');
    expect(await fs.readdir(path.join(repo.dir, 'keys'))).toEqual(keys);
    ok(await cairn(repo, ['check']), 'check');
  });
});

describe('restore onto a file system that refuses owners', () => {
  it('as root, an owner the target refuses is reported for ten files and then summed up in one line; --no-owner restores without owners and without errors; --json keeps every error', async () => {
    if (process.getuid?.() !== 0 || !haveTool('unshare', 'apt-get install -y util-linux')) return;
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (let i = 0; i < 40; i++) {
      const f = path.join(src, `f${i}`);
      await fs.writeFile(f, `file ${i}`);
      await fs.chown(f, 12345, 12345);
      await fs.chmod(f, 0o640);
      await fs.utimes(f, 1_600_000_000 + i, 1_600_000_000 + i);
    }
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    // Root in a user namespace that maps only root: the kernel refuses any other owner (EINVAL),
    // as NFS with root squashing, SMB or FAT refuse owners (EPERM).
    const inNamespace = (args: string[]) => runCommand('unshare', ['-U', '-r', process.execPath, CLI, ...args], { env: repo.env });
    const restored = async (target: string): Promise<void> => {
      for (let i = 0; i < 40; i++) {
        const f = path.join(target, src, `f${i}`);
        expect(await fs.readFile(f, 'utf8')).toBe(`file ${i}`);
        const st = await fs.stat(f);
        expect(st.mode & 0o7777).toBe(0o640);
        expect(st.mtimeMs).toBe((1_600_000_000 + i) * 1000);
      }
    };

    const target = await tempDir();
    const r = await inNamespace(['restore', 'latest', '--target', target]);
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines.filter((l) => /^error: \/.+\/f\d+: setting metadata: EINVAL: invalid argument, lchown '.+\/f\d+'$/.test(l))).toHaveLength(10);
    expect(lines.slice(10)).toEqual([
      'error: the same error for 30 more files: setting metadata: EINVAL: invalid argument, lchown (the target does not take these owners: NFS with root squashing, SMB and FAT file systems refuse them; --no-owner restores without setting owners)',
      'Fatal: there were 40 errors while restoring',
    ]);
    // Mode, times and content are set all the same.
    await restored(target);

    const plain = await tempDir();
    const r2 = await inNamespace(['restore', 'latest', '--target', plain, '--no-owner']);
    expect(r2.stderr).toBe('');
    expect(r2.code).toBe(0);
    await restored(plain);

    const r3 = await inNamespace(['--json', 'restore', 'latest', '--target', await tempDir()]);
    expect(r3.code).toBe(1);
    const errors = r3.out.trim().split('\n').map((l) => JSON.parse(l) as { message_type: string }).filter((m) => m.message_type === 'error');
    expect(errors).toHaveLength(40);
  });
});

describe('restore target that turns read-only', () => {
  it('a restore whose target becomes read-only half way stops with one message saying how far it got, and the same restore finishes once it is writable', async () => {
    await onSmallDisk('64m', async (mnt) => {
      const repo = await makeRepoPaths();
      const src = await tempDir();
      await fs.mkdir(path.join(src, 'small'));
      for (let i = 0; i < 3000; i++) await fs.writeFile(path.join(src, 'small', `f${i}`), seededBytes(3000 + i, 2048));
      await fs.writeFile(path.join(src, 'big'), seededBytes(6, 6 * 1024 * 1024));
      ok(await cairn(repo, ['init']), 'init');
      ok(await cairn(repo, ['backup', src]), 'backup');
      const target = path.join(mnt, 'target');
      let pid = 0;
      const restoring = cairn(repo, ['restore', 'latest', '--target', target], { onSpawn: (p) => (pid = p) });
      // Once the first files are in place, the restore is paused and the file system made
      // read-only, as the kernel does after disk errors. The kernel refuses while a file is open
      // for writing: then the restore goes on for a moment and the remount is tried again.
      const smallDir = path.join(target, src, 'small');
      for (let t = 0; (await fs.readdir(smallDir).catch(() => [])).length === 0; t++) {
        if (t > 20_000) throw new Error('the restore wrote no file');
        await new Promise((r) => setTimeout(r, 1));
      }
      let remounted = false;
      for (let t = 0; t < 500 && !remounted; t++) {
        process.kill(pid, 'SIGSTOP');
        remounted = (await runCommand('mount', ['-o', 'remount,ro', mnt])).code === 0;
        process.kill(pid, 'SIGCONT');
        if (!remounted) await new Promise((r) => setTimeout(r, 2));
      }
      expect(remounted).toBe(true);
      const r = await restoring;
      expect(r.code).toBe(1);
      // One line, not one per file after it.
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^Fatal: the restore target cannot be written to \(read-only file system (writing|creating|setting the metadata of) \/.+\): restore stopped with (\d+) of 3001 files in place; once it can \(mounted read-write, .*\), run the same restore again, which keeps the files already restored$/,
      );
      const placed = Number(/stopped with (\d+) of/.exec(lines[0])![1]);
      expect(placed).toBeLessThan(3001);
      ok(await runCommand('mount', ['-o', 'remount,rw', mnt]), 'remount read-write');
      const again = ok(await cairn(repo, ['restore', 'latest', '--target', target, '--verify']), 'restore again');
      expect(again.stderr).toBe('');
      expect(again.out).toMatch(new RegExp(`, ${placed} left as they were`));
      expect(compareTrees(await describeTree(src), await describeTree(path.join(target, src)), 1000n)).toEqual([]);
    });
  });

  it('a restore into a folder on a read-only file system stops at the first file with one message', async () => {
    await onReadOnlyDisk(async (mnt) => {
      const repo = await makeRepoPaths();
      const src = await tempDir();
      for (let i = 0; i < 50; i++) await fs.writeFile(path.join(src, `f${i}`), seededBytes(i, 1000));
      ok(await cairn(repo, ['init']), 'init');
      ok(await cairn(repo, ['backup', src]), 'backup');
      // The source folder's content into the read-only mount itself: the target exists and no
      // folder is made, so nothing fails before the first file.
      const r = await cairn(repo, ['restore', `latest:${src}`, '--target', mnt, '--include', path.join(src, 'f1*')]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/^Fatal: the restore target cannot be written to \(read-only file system (writing|creating) \/.+\): restore stopped with 0 of 11 files in place; /);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    });
  });
});

describe('passwords typed on a terminal', () => {
  it.runIf(HAVE_RESTIC)('a password file with spaces around the password or a second line opens the same repositories in restic and Cairn; a key made from its first line still opens, with a warning', async () => {
    const repo = await makeRepoPaths();
    await fs.writeFile(repo.passwordFile, '  spaced secret \nsecond line\n');
    ok(await restic(repo, ['init']), 'restic init');
    ok(await cairn(repo, ['snapshots']), 'cairn opens restic\'s repository with the same file');
    const mine = await makeRepoPaths();
    await fs.writeFile(mine.passwordFile, '\tanother one  \n');
    ok(await cairn(mine, ['init']), 'cairn init');
    ok(await restic(mine, ['snapshots']), 'restic opens Cairn\'s repository with the same file');
    // The same through a password command, as restic's --password-command runs it.
    const viaCommand = { env: { CAIRN_PASSWORD_FILE: '', RESTIC_PASSWORD_FILE: '' } };
    ok(await cairn(repo, ['--password-command', `cat '${repo.passwordFile}'`, 'snapshots'], viaCommand), 'cairn --password-command');
    ok(await cairn(mine, ['snapshots'], { env: { ...viaCommand.env, CAIRN_PASSWORD_COMMAND: `sh -c "cat '${mine.passwordFile}'"` } }), 'CAIRN_PASSWORD_COMMAND');
    const both = await cairn(repo, ['--password-command', 'cat /dev/null', 'snapshots']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('a password file and a password command cannot both be given');
    const failing = await cairn(repo, ['--password-command', "sh -c 'echo hunter2; exit 1'", 'snapshots'], viaCommand);
    expect(failing.code).toBe(1);
    expect(failing.stderr).toContain('--password-command "sh" failed (exit code 1)');
    expect(failing.stderr).not.toContain('hunter2');
    // A key from the first line exactly, as earlier versions read the file.
    const old = await makeRepoPaths();
    await fs.writeFile(old.passwordFile, '  old style \n');
    ok(await cairn(old, ['init'], { env: { CAIRN_PASSWORD_FILE: '', CAIRN_PASSWORD: '  old style ' } }), 'init with the first line');
    const opened = ok(await cairn(old, ['snapshots']), 'opens with the first line');
    expect(opened.stderr).toContain(`only the first line of ${old.passwordFile}, spaces kept, opens this repository`);
    const wrong = await makeRepoPaths();
    await fs.writeFile(wrong.passwordFile, 'not it\n');
    const r = await cairn({ ...old, passwordFile: wrong.passwordFile, env: { ...old.env, CAIRN_PASSWORD_FILE: wrong.passwordFile } }, ['snapshots']);
    expect(r.code).toBe(12);
  });

  it('init asks twice and refuses a mismatch; the repository then opens with the typed password', async () => {
    const base = await tempDir();
    const repoDir = path.join(base, 'repo');
    const env: NodeJS.ProcessEnv = { ...process.env, CAIRN_REPOSITORY: repoDir, CAIRN_KDF_N: '1024' };
    for (const k of ['CAIRN_PASSWORD', 'CAIRN_PASSWORD_FILE', 'RESTIC_PASSWORD', 'RESTIC_PASSWORD_FILE']) delete env[k];
    const inTty = (args: string, input: string) =>
      runCommand('script', ['-qec', `${process.execPath} ${path.resolve('dist/cli/main.js')} ${args}`, '/dev/null'], { env, input });
    const mismatch = await inTty('init', 'first secret\nsecond secret\n');
    expect(mismatch.code).toBe(1);
    expect(mismatch.out).toContain('the passwords do not match');
    await expect(fs.access(repoDir)).rejects.toThrow();
    const good = await inTty('init', 'typed secret\ntyped secret\n');
    expect(good.code).toBe(0);
    const open = await inTty('snapshots', 'typed secret\n');
    expect(open.code).toBe(0);
    expect(open.out).toContain('0 snapshots');
    const wrong = await inTty('snapshots', 'not it\n');
    expect(wrong.code).toBe(12);
  });
});
