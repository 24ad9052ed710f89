import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FUSE_PACKAGE } from '../../src/cli/commands/mount.js';
import { readXattrs, writeXattrs } from '../../src/fs/xattr.js';
import { CLI, HAVE_RESTIC, cairn, haveTool, makeRepoPaths, ok, restic, runCommand, tempDir, type TestRepo } from '../support/tools.js';
import { HAVE_RCLONE, startRestServer } from '../support/rest-server.js';
import { compareTrees, describeTree, makeOddTree, seededBytes } from '../support/trees.js';

/**
 * `cairn mount` through the kernel's FUSE: the tests read the mount with ordinary file calls, as
 * a user's tools would. They need fusermount3 (Debian package fuse3), /dev/fuse and root (or a
 * FUSE that lets this user mount).
 */
function fuseUsable(): boolean {
  if (!haveTool('fusermount3', 'apt-get install -y fuse3')) return false;
  let binding = true;
  try {
    createRequire(import.meta.url)('fuse-napi');
  } catch {
    binding = false;
  }
  const ok = binding && existsSync('/dev/fuse') && process.getuid?.() === 0;
  const hint = `cairn mount needs ${FUSE_PACKAGE} (apt-get install -y libfuse3-dev pkg-config; npm install --no-save ${FUSE_PACKAGE}), /dev/fuse and root`;
  if (!ok && process.env.CI === 'true') throw new Error(`the mount tests run in CI: ${hint}`);
  if (!ok) console.warn(`skipping: ${hint}`);
  return ok;
}

const HAVE_FUSE = fuseUsable();

const mounted = (dir: string): boolean => readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);

interface Mount {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

const running: { m: Mount; dir: string }[] = [];

afterEach(async () => {
  for (const { m, dir } of running.splice(0)) {
    if (m.child.exitCode === null) m.child.kill('SIGINT');
    await m.exited;
    if (mounted(dir)) spawnSync('umount', ['-l', dir]);
  }
});

/** Starts `cairn mount` and resolves once it serves (or rejects with its output when it ends first). */
async function startMount(repo: TestRepo, dir: string, args: string[] = []): Promise<Mount> {
  const child = spawn(process.execPath, [CLI, 'mount', dir, ...args], { env: { ...process.env, ...repo.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const m: Mount = { child, stdout: () => out, stderr: () => err, exited };
  running.push({ m, dir });
  const deadline = Date.now() + 30_000;
  while (!out.includes('Now serving') && !out.includes('"serving"')) {
    if (child.exitCode !== null) throw new Error(`mount exited ${child.exitCode}: ${out}\n${err}`);
    if (Date.now() > deadline) throw new Error(`mount did not start: ${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return m;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.runIf(HAVE_FUSE)('cairn mount', () => {
  it('serves every snapshot as restic lays them out, with contents, modes, owners, times, links and xattrs as backed up; read-only; new snapshots appear; Ctrl-c unmounts', async () => {
    const repo = await makeRepoPaths();
    const base = await tempDir();
    const src = path.join(base, 'src');
    const tree = await makeOddTree(src);
    writeXattrs(path.join(src, 'plain.txt'), [{ name: 'user.note', value: Buffer.from('kept').toString('base64') }]);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', '--tag', 'first', '--host', 'alpha', src]), 'backup');
    const snap = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out)[0] as { short_id: string; time: string };
    const mnt = path.join(base, 'mnt');
    await fs.mkdir(mnt);
    const m = await startMount(repo, mnt);
    expect(mounted(mnt)).toBe(true);

    expect((await fs.readdir(mnt)).sort()).toEqual(['hosts', 'ids', 'snapshots', 'tags']);
    const name = snap.time.replace(/\.\d+/, '').replace(/\+00:00$/, 'Z');
    expect((await fs.readdir(path.join(mnt, 'snapshots'))).sort()).toEqual([name, 'latest']);
    expect(await fs.readlink(path.join(mnt, 'snapshots/latest'))).toBe(name);
    expect(await fs.readdir(path.join(mnt, 'ids'))).toEqual([snap.short_id]);
    expect((await fs.readdir(path.join(mnt, 'hosts/alpha'))).sort()).toEqual([name, 'latest']);
    expect((await fs.readdir(path.join(mnt, 'tags/first'))).sort()).toEqual([name, 'latest']);

    // The tree as backed up: every node type, byte for byte, modes, owners and times to the nanosecond.
    const want = await describeTree(src);
    for (const at of [`snapshots/latest${src}`, `ids/${snap.short_id}${src}`, `tags/first/${name}${src}`]) {
      const got = await describeTree(path.join(mnt, at));
      // Hard links share an inode on disk; FUSE numbers each path on its own (nlink says 2 for both).
      for (const e of [...want.values(), ...got.values()]) delete e.group;
      expect(compareTrees(want, got), at).toEqual([]);
    }
    const inMount = (p: string): string => path.join(mnt, 'snapshots/latest', src, p);
    expect((await fs.lstat(inMount('hardlink-a'))).nlink).toBe(2);
    expect(readXattrs(inMount('plain.txt'))).toEqual([{ name: 'user.note', value: Buffer.from('kept').toString('base64') }]);

    // Reads at any offset, across blob boundaries and past the end.
    const big = await fs.readFile(path.join(src, 'random-3m.bin'));
    const fh = await fs.open(inMount('random-3m.bin'));
    for (const [pos, len] of [[0, 10], [524_287, 300_000], [1_048_570, 2_000_000], [big.length - 5, 100], [big.length + 10, 10]]) {
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, pos);
      expect(buf.subarray(0, bytesRead).equals(big.subarray(pos, pos + len)), `at ${pos}`).toBe(true);
    }
    await fh.close();

    // Nothing can be changed.
    for (const [what, attempt] of [
      ['create', () => fs.writeFile(path.join(mnt, 'snapshots/new'), 'x')],
      ['write', () => fs.writeFile(inMount('plain.txt'), 'x')],
      ['mkdir', () => fs.mkdir(inMount('new-dir'))],
      ['unlink', () => fs.unlink(inMount('plain.txt'))],
      ['rename', () => fs.rename(inMount('plain.txt'), inMount('other'))],
      ['chmod', () => fs.chmod(inMount('plain.txt'), 0o600)],
    ] as const) {
      await expect(attempt(), what).rejects.toMatchObject({ code: 'EROFS' });
    }

    // A backup made while mounted shows up (its data in index files written since the mount began).
    await fs.writeFile(path.join(src, 'added.txt'), 'added later\n');
    ok(await cairn(repo, ['backup', '--tag', 'second', '--host', 'alpha', src]), 'second backup');
    const second = JSON.parse(ok(await cairn(repo, ['snapshots', '--json', 'latest']), 'snapshots').out)[0] as { short_id: string };
    await until('the second snapshot', async () => ((await fs.readdir(path.join(mnt, 'ids'))).includes(second.short_id) ? true : undefined));
    expect(await fs.readFile(path.join(mnt, 'ids', second.short_id, src, 'added.txt'), 'utf8')).toBe('added later\n');
    expect((await fs.readdir(path.join(mnt, 'snapshots'))).length).toBe(3);
    expect(await fs.readdir(path.join(mnt, 'tags'))).toEqual(expect.arrayContaining(['first', 'second']));

    m.child.kill('SIGINT');
    expect(await m.exited).toBe(0);
    expect(mounted(mnt)).toBe(false);
    expect(await fs.readdir(path.join(repo.dir, 'locks'))).toEqual([]);
    await tree.close();
  });

  it('answers EIO for a file whose data is damaged (and says so on stderr), serves the rest, and ends when unmounted from outside', async () => {
    const repo = await makeRepoPaths();
    const base = await tempDir();
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'good.txt'), 'fine\n');
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup good');
    await fs.writeFile(path.join(src, 'bad.bin'), seededBytes(5, 200_000));
    // Its own pack (a backup per file), so that damage to it touches this file alone.
    ok(await cairn(repo, ['backup', src]), 'backup bad');
    const packsBefore = new Set(ok(await cairn(repo, ['list', 'packs']), 'list').out.trim().split('\n'));
    expect(packsBefore.size).toBeGreaterThan(1);
    // The newest data pack holds bad.bin's blob: flip a byte in its middle.
    const stats = await Promise.all([...packsBefore].map(async (id) => ({ id, st: await fs.stat(path.join(repo.dir, 'data', id.slice(0, 2), id)) })));
    const largest = stats.sort((a, b) => b.st.size - a.st.size)[0];
    const file = path.join(repo.dir, 'data', largest.id.slice(0, 2), largest.id);
    await fs.chmod(file, 0o600);
    const bytes = await fs.readFile(file);
    bytes[100] ^= 0xff;
    await fs.writeFile(file, bytes);

    const mnt = path.join(base, 'mnt');
    await fs.mkdir(mnt);
    const m = await startMount(repo, mnt);
    const dir = path.join(mnt, 'snapshots/latest', src);
    expect(await fs.readFile(path.join(dir, 'good.txt'), 'utf8')).toBe('fine\n');
    expect((await fs.stat(path.join(dir, 'bad.bin'))).size).toBe(200_000);
    await expect(fs.readFile(path.join(dir, 'bad.bin'))).rejects.toMatchObject({ code: 'EIO' });
    await until('the report', async () => (m.stderr().includes('bad.bin') ? true : undefined));
    expect(m.stderr()).toMatch(/error: .*bad\.bin: data blob [0-9a-f]{64} in pack [0-9a-f]{64} fails verification/);

    ok(await runCommand('umount', [mnt]), 'umount');
    expect(await m.exited).toBe(0);
    expect(await fs.readdir(path.join(repo.dir, 'locks'))).toEqual([]);
  });

  it('shows only the snapshots the filters pick, and everything as root\'s with --owner-root', async () => {
    const repo = await makeRepoPaths();
    const base = await tempDir();
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'f'), 'x');
    await fs.chown(path.join(src, 'f'), 65534, 65534);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', '--tag', 'keep', '--host', 'one', src]), 'backup one');
    ok(await cairn(repo, ['backup', '--tag', 'other', '--host', 'two', src]), 'backup two');
    const all = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as { short_id: string; tags: string[] }[];
    const kept = all.find((s) => s.tags.includes('keep'))!;
    const mnt = path.join(base, 'mnt');
    await fs.mkdir(mnt);
    await fs.mkdir(path.join(base, 'mnt2'));
    const m = await startMount(repo, mnt, ['--tag', 'keep', '--owner-root']);
    expect(m.stdout()).toContain('(1 snapshot)');
    // With --json, one line says it serves.
    const asJson = await startMount(repo, path.join(base, 'mnt2'), ['--json', '--host', 'two']);
    expect(JSON.parse(asJson.stdout())).toEqual({ message_type: 'serving', mount_point: path.join(base, 'mnt2'), snapshots: 1 });
    expect(await fs.readdir(path.join(base, 'mnt2/hosts'))).toEqual(['two']);
    expect(await fs.readdir(path.join(mnt, 'ids'))).toEqual([kept.short_id]);
    expect(await fs.readdir(path.join(mnt, 'hosts'))).toEqual(['one']);
    expect(await fs.readdir(path.join(mnt, 'tags'))).toEqual(['keep']);
    const st = await fs.stat(path.join(mnt, 'ids', kept.short_id, src, 'f'));
    expect([st.uid, st.gid]).toEqual([0, 0]);
    // Without --owner-root the owner is the file's.
    m.child.kill('SIGINT');
    expect(await m.exited).toBe(0);
    const plain = await startMount(repo, mnt);
    expect(plain.stdout()).toContain('(2 snapshots)');
    const owned = await fs.stat(path.join(mnt, 'ids', kept.short_id, src, 'f'));
    expect([owned.uid, owned.gid]).toEqual([65534, 65534]);
  });

  it.runIf(HAVE_RESTIC)('mounts a repository restic wrote', async () => {
    const repo = await makeRepoPaths();
    const base = await tempDir();
    const src = path.join(base, 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'sub/data.bin'), seededBytes(9, 2_500_000));
    await fs.writeFile(path.join(src, 'small.txt'), 'small\n');
    await fs.symlink('sub/data.bin', path.join(src, 'link'));
    ok(await restic(repo, ['init']), 'restic init');
    ok(await restic(repo, ['backup', src]), 'restic backup');
    const mnt = path.join(base, 'mnt');
    await fs.mkdir(mnt);
    await startMount(repo, mnt);
    const got = await describeTree(path.join(mnt, 'snapshots/latest', src));
    expect(compareTrees(await describeTree(src), got)).toEqual([]);
  });

  it.runIf(HAVE_RCLONE)('mounts a repository on a REST server (ranged loads, pack sizes from the server)', async () => {
    const base = await tempDir();
    const server = await startRestServer(path.join(base, 'store'));
    try {
      const local = await makeRepoPaths();
      const repo: TestRepo = { ...local, dir: `rest:${server.url}`, env: { ...local.env, CAIRN_REPOSITORY: `rest:${server.url}` } };
      const src = path.join(base, 'src');
      await fs.mkdir(src);
      // Many small files share packs: their blobs come from windows of those packs.
      for (let i = 0; i < 60; i++) await fs.writeFile(path.join(src, `f${i}`), seededBytes(100 + i, 1000 + i * 997));
      await fs.writeFile(path.join(src, 'big'), seededBytes(99, 3_000_000));
      ok(await cairn(repo, ['init']), 'init');
      ok(await cairn(repo, ['backup', src]), 'backup');
      const mnt = path.join(base, 'mnt');
      await fs.mkdir(mnt);
      await startMount(repo, mnt);
      expect(compareTrees(await describeTree(src), await describeTree(path.join(mnt, 'snapshots/latest', src)))).toEqual([]);
    } finally {
      for (const { m, dir } of running.splice(0)) {
        m.child.kill('SIGINT');
        await m.exited;
        if (mounted(dir)) spawnSync('umount', ['-l', dir]);
      }
      await server.stop();
    }
  });

  it('takes the place of a mount left by a cairn mount that was killed', async () => {
    const repo = await makeRepoPaths();
    const base = await tempDir();
    await fs.mkdir(path.join(base, 'src'));
    await fs.writeFile(path.join(base, 'src/f'), 'content\n');
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', path.join(base, 'src')]), 'backup');
    const mnt = path.join(base, 'mnt');
    await fs.mkdir(mnt);
    const killed = await startMount(repo, mnt);
    killed.child.kill('SIGKILL');
    await killed.exited;
    await expect(fs.readdir(mnt)).rejects.toMatchObject({ code: 'ENOTCONN' });
    const m = await startMount(repo, mnt, ['--no-lock']);
    expect(m.stderr()).toContain(`replaced the mount at ${mnt} left by a process that ended`);
    expect(await fs.readFile(path.join(mnt, 'snapshots/latest', base, 'src/f'), 'utf8')).toBe('content\n');
    m.child.kill('SIGINT');
    expect(await m.exited).toBe(0);
    expect(mounted(mnt)).toBe(false);
  });

  it('refuses a mount point that is missing or not a folder, with the reason', async () => {
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const base = await tempDir();
    const missing = await cairn(repo, ['mount', path.join(base, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`mount point ${path.join(base, 'nope')} does not exist`);
    await fs.writeFile(path.join(base, 'file'), 'x');
    const file = await cairn(repo, ['mount', path.join(base, 'file')]);
    expect(file.code).toBe(1);
    expect(file.stderr).toContain('is not a folder');
    // A second mount where one serves already.
    const mnt = path.join(base, 'mnt');
    await fs.mkdir(mnt);
    await startMount(repo, mnt);
    const twice = await cairn(repo, ['mount', mnt]);
    expect(twice.code).toBe(1);
    expect(twice.stderr).toContain(`mounting at ${mnt} failed`);
    expect(twice.stderr).toContain('a file system is mounted there already');
  });
});
