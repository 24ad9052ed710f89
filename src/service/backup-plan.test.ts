import { describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import { backupPlan, openRepository } from './backup-plan.js';
import { parsePlan } from './config.js';
import { cairn, makeRepoPaths, ok, runCommand, tempDir, type TestRepo } from '../../test/support/tools.js';
import { seededBytes } from '../../test/support/trees.js';

process.env.CAIRN_KDF_N = '1024';

describe('the repository of a plan', () => {
  it('is created once when the first jobs of several plans find it missing at the same time', async () => {
    const dir = await tempDir();
    const passwordFile = path.join(dir, 'pw');
    await fs.writeFile(passwordFile, 'secret\n', { mode: 0o600 });
    const ref = { location: path.join(dir, 'repo'), passwordFile, initIfMissing: true };
    const repos = await Promise.all(Array.from({ length: 6 }, () => openRepository(ref)));
    expect(new Set(repos.map((r) => r.config.id)).size).toBe(1);
    expect(await fs.readdir(path.join(dir, 'repo', 'keys'))).toHaveLength(1);
    for (const r of repos) await r.close();
    await expect(openRepository({ ...ref, location: path.join(dir, 'other'), initIfMissing: false })).rejects.toThrow(/no repository/);
  });
});

describe("a plan's file options", () => {
  const run = async (repo: TestRepo, plan: Record<string, unknown>, src: string): Promise<string> => {
    const p = parsePlan({ sources: [{ path: src }], ...plan });
    const ref = { location: repo.dir, passwordFile: repo.passwordFile, initIfMissing: true };
    const r = await backupPlan(ref, p, [{ path: src }], { changedPaths: null, signal: new AbortController().signal, onProgress: () => undefined, onItemError: (f, m) => expect.fail(`${f}: ${m}`) });
    return r.snapshotId!;
  };
  const node = async (repo: TestRepo, snap: string, file: string) =>
    ok(await cairn(repo, ['ls', '--json', snap]), 'ls')
      .out.trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { path?: string; atime?: string })
      .find((n) => n.path === file)!;

  it('ignoreInode takes a file whose size and mtime match as unchanged though its inode changed, as backup --ignore-inode; withAtime stores access times', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const f = path.join(src, 'f');
    const [atime, mtime] = [new Date('2021-02-03T04:05:06Z'), new Date('2020-01-02T03:04:05Z')];
    await fs.writeFile(f, seededBytes(1, 4_000));
    await fs.utimes(f, atime, mtime);
    const first = await run(repo, { name: 'nfs', ignoreInode: true, withAtime: true }, src);
    expect(new Date((await node(repo, first, f)).atime!).toISOString()).toBe(atime.toISOString());
    // Another file of the same size and times takes its place: a new inode and ctime.
    const swap = path.join(src, '.swap');
    await fs.writeFile(swap, seededBytes(2, 4_000));
    await fs.utimes(swap, atime, mtime);
    await fs.rename(swap, f);
    const second = await run(repo, { name: 'nfs', ignoreInode: true }, src);
    expect(new Date((await node(repo, second, f)).atime!).toISOString()).toBe(mtime.toISOString());
    expect(ok(await cairn(repo, ['dump', second, f]), 'dump').stdout).toEqual(seededBytes(1, 4_000));
    // The second snapshot records the new inode and ctime; another swap, and without ignoreInode
    // the new inode makes the file changed: read again.
    await fs.writeFile(swap, seededBytes(2, 4_000));
    await fs.utimes(swap, atime, mtime);
    await fs.rename(swap, f);
    const third = await run(repo, { name: 'plain' }, src);
    expect(ok(await cairn(repo, ['dump', third, f]), 'dump').stdout).toEqual(seededBytes(2, 4_000));
  });

  it.runIf(process.getuid?.() === 0)('oneFileSystem keeps a mount point below a source as an empty folder', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'here.txt'), 'here');
    await fs.mkdir(path.join(src, 'mnt'));
    ok(await runCommand('mount', ['-t', 'tmpfs', 'tmpfs', path.join(src, 'mnt')]), 'mount tmpfs');
    try {
      await fs.writeFile(path.join(src, 'mnt', 'other-fs.txt'), 'elsewhere');
      const listed = async (snap: string) => ok(await cairn(repo, ['ls', snap]), 'ls').out.split('\n');
      const within = await listed(await run(repo, { name: 'x', oneFileSystem: true }, src));
      expect(within).toContain(path.join(src, 'mnt'));
      expect(within).not.toContain(path.join(src, 'mnt', 'other-fs.txt'));
      expect(await listed(await run(repo, { name: 'all' }, src))).toContain(path.join(src, 'mnt', 'other-fs.txt'));
    } finally {
      await runCommand('umount', [path.join(src, 'mnt')]);
    }
  });

  it('skipIfUnchanged saves no snapshot when a run finds the last snapshot\'s tree, and says so in the result', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'a'), 'one');
    const plan = parsePlan({ name: 'quiet', sources: [{ path: src }], skipIfUnchanged: true });
    const ref = { location: repo.dir, passwordFile: repo.passwordFile, initIfMissing: true };
    const once = () => backupPlan(ref, plan, [{ path: src }], { changedPaths: null, signal: new AbortController().signal, onProgress: () => undefined, onItemError: (f, m) => expect.fail(`${f}: ${m}`) });
    const first = await once();
    expect(first.skipped).toBeUndefined();
    // The tree holds the folders above the source too: another test's new folder in the temporary
    // folder makes one more snapshot, rightly; two runs with nothing in between skip the second.
    let last = first;
    let next = await once();
    for (let attempt = 0; attempt < 10 && !next.skipped; attempt++) [last, next] = [next, await once()];
    expect(next).toMatchObject({ skipped: true, snapshotId: last.snapshotId, errors: 0 });
    const listed = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as { id: string }[];
    expect(listed.map((s) => s.id)).not.toContain(undefined);
    expect(listed[listed.length - 1].id).toBe(last.snapshotId);
    await fs.writeFile(path.join(src, 'a'), 'two');
    const changed = await once();
    expect(changed.skipped).toBeUndefined();
    expect(changed.snapshotId).not.toBe(last.snapshotId);
  });

  it('refuses them for targets that are not repositories and for plans of databases', () => {
    for (const k of ['oneFileSystem', 'ignoreInode', 'ignoreCtime', 'withAtime', 'skipIfUnchanged']) {
      const message = `${k} applies to folders backed up into a repository`;
      expect(() => parsePlan({ name: 'a', sources: [{ path: '/srv' }], target: { kind: 'archive', dest: '/backups' }, [k]: true })).toThrow(message);
      expect(() => parsePlan({ name: 'a', sources: [{ kind: 'database', url: 'sqlite:/srv/app.db' }], schedule: '0 3 * * *', [k]: true })).toThrow(message);
    }
  });
});
