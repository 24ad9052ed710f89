/**
 * restore into a target that already holds files: restic's --overwrite modes, --delete (with
 * include/exclude patterns and folders in the way), --dry-run (nothing changes), -vv actions, and
 * a symlink in the target that must not lead the restore out of it.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cairn, makeRepoPaths, ok, runCommand, tempDir, type TestRepo } from '../support/tools.js';
import { seededBytes } from '../support/trees.js';

interface Summary {
  message_type: 'summary';
  dry_run: boolean;
  total_files: number;
  files_restored: number;
  files_skipped: number;
  files_deleted: number;
  bytes_restored: number;
  bytes_skipped: number;
  errors: number;
}

/** Every path under `dir` with its type, content hash or link target, and mtime to the microsecond. */
async function state(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const e of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    const p = path.join(e.parentPath, e.name);
    const st = await fs.lstat(p, { bigint: true });
    const what = e.isSymbolicLink() ? `link:${await fs.readlink(p)}` : e.isFile() ? `file:${createHash('sha256').update(await fs.readFile(p)).digest('hex')}` : 'dir';
    out[path.relative(dir, p)] = `${what} ${st.mtimeNs / 1000n}`;
  }
  return out;
}

describe('restore into a target that holds files', () => {
  let repo: TestRepo;
  let src: string;
  const big = seededBytes(5, 3 * 1024 * 1024);
  /** Where the source lies inside a restore target. */
  const inTarget = (t: string, p = '') => path.join(t, src, p);

  const restore = async (target: string, args: string[]) => {
    const r = await cairn(repo, ['--json', '-vv', 'restore', 'latest', '--target', target, ...args]);
    const lines = r.out.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const actions: Record<string, string> = {};
    for (const l of lines) if (l.message_type === 'verbose_status') actions[path.relative(src, l.item as string)] = l.action as string;
    return { r, summary: lines.find((l) => l.message_type === 'summary') as unknown as Summary, actions };
  };

  beforeAll(async () => {
    repo = await makeRepoPaths();
    src = await tempDir();
    await fs.mkdir(path.join(src, 'sub'));
    await fs.writeFile(path.join(src, 'a.txt'), 'one\n');
    await fs.writeFile(path.join(src, 'sub', 'b.bin'), big);
    await fs.writeFile(path.join(src, 'sub', 'keep.log'), 'log\n');
    await fs.writeFile(path.join(src, 'hard1'), 'linked\n');
    await fs.link(path.join(src, 'hard1'), path.join(src, 'hard2'));
    await fs.symlink('a.txt', path.join(src, 'link'));
    const then = new Date('2024-05-06T07:08:09.123456Z');
    for (const p of ['a.txt', 'sub/b.bin', 'sub/keep.log', 'hard1']) await fs.utimes(path.join(src, p), then, then);
    await fs.lutimes(path.join(src, 'link'), then, then);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
  });

  /** A restored copy of the snapshot, changed: a.txt same size and time with other bytes, sub/b.bin newer, sub/keep.log gone, link an old regular file. */
  let restored: string | null = null;
  const changedTarget = async () => {
    if (!restored) {
      restored = await tempDir();
      ok(await cairn(repo, ['restore', 'latest', '--target', restored]), 'restore');
    }
    const t = path.join(await tempDir(), 'target');
    ok(await runCommand('cp', ['-a', restored, t]), 'cp -a');
    const a = inTarget(t, 'a.txt');
    const { mtime } = await fs.stat(a);
    await fs.writeFile(a, 'ONE\n');
    await fs.utimes(a, mtime, mtime);
    await fs.writeFile(inTarget(t, 'sub/b.bin'), 'edited since\n');
    await fs.rm(inTarget(t, 'sub/keep.log'));
    await fs.rm(inTarget(t, 'link'));
    await fs.writeFile(inTarget(t, 'link'), 'not a link\n');
    await fs.utimes(inTarget(t, 'link'), new Date('2000-01-01T00:00:00Z'), new Date('2000-01-01T00:00:00Z'));
    return t;
  };

  it('--overwrite always, if-changed, if-newer and never decide what is replaced', async () => {
    const cases = [
      { mode: 'always', a: 'one\n', b: 'big', link: true, restored: 3, skipped: 1, actions: { 'a.txt': 'updated', 'sub/b.bin': 'updated', 'sub/keep.log': 'restored', hard1: 'unchanged', link: 'updated' } },
      // Same size and mtime: taken as right, without reading it.
      { mode: 'if-changed', a: 'ONE\n', b: 'big', link: true, restored: 2, skipped: 2, actions: { 'a.txt': 'unchanged', 'sub/b.bin': 'updated', 'sub/keep.log': 'restored', hard1: 'unchanged', link: 'updated' } },
      // Only what the snapshot has newer: the old regular file where the link goes, and what is missing.
      { mode: 'if-newer', a: 'ONE\n', b: 'edited since\n', link: true, restored: 1, skipped: 3, actions: { 'a.txt': 'unchanged', 'sub/b.bin': 'unchanged', 'sub/keep.log': 'restored', hard1: 'unchanged', link: 'updated' } },
      { mode: 'never', a: 'ONE\n', b: 'edited since\n', link: false, restored: 1, skipped: 3, actions: { 'a.txt': 'unchanged', 'sub/b.bin': 'unchanged', 'sub/keep.log': 'restored', hard1: 'unchanged', link: 'unchanged' } },
    ] as const;
    for (const c of cases) {
      const t = await changedTarget();
      const { r, summary, actions } = await restore(t, ['--overwrite', c.mode]);
      ok(r, `restore --overwrite ${c.mode}`);
      expect(await fs.readFile(inTarget(t, 'a.txt'), 'utf8'), c.mode).toBe(c.a);
      const b = await fs.readFile(inTarget(t, 'sub/b.bin'));
      if (c.b === 'big') expect(b.equals(big), c.mode).toBe(true);
      else expect(b.toString(), c.mode).toBe(c.b);
      expect(await fs.readFile(inTarget(t, 'sub/keep.log'), 'utf8')).toBe('log\n');
      if (c.link) expect(await fs.readlink(inTarget(t, 'link')), c.mode).toBe('a.txt');
      else expect(await fs.readFile(inTarget(t, 'link'), 'utf8')).toBe('not a link\n');
      expect(summary, c.mode).toMatchObject({ dry_run: false, total_files: 4, files_restored: c.restored, files_skipped: c.skipped, files_deleted: 0, errors: 0 });
      for (const [p, action] of Object.entries(c.actions)) expect(actions[p], `${c.mode}: ${p}`).toBe(action);
      // The hardlink's second name stays a link to the first.
      expect((await fs.stat(inTarget(t, 'hard2'))).ino).toBe((await fs.stat(inTarget(t, 'hard1'))).ino);
    }
    const bad = await cairn(repo, ['restore', 'latest', '--target', await tempDir(), '--overwrite', 'sometimes']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/invalid --overwrite "sometimes": use always, if-changed, if-newer or never/);
  });

  it('--dry-run changes nothing and says what a restore would do', async () => {
    const t = await changedTarget();
    await fs.writeFile(inTarget(t, 'sub/extra'), 'extra\n');
    const before = await state(t);
    const { r, summary, actions } = await restore(t, ['--dry-run', '--delete']);
    ok(r, 'restore --dry-run');
    expect(await state(t)).toEqual(before);
    expect(summary).toMatchObject({ dry_run: true, files_restored: 3, files_skipped: 1, files_deleted: 1, bytes_restored: 4 + big.length + 4, errors: 0 });
    expect(actions).toMatchObject({ 'a.txt': 'updated', 'sub/b.bin': 'updated', 'sub/keep.log': 'restored', hard1: 'unchanged', 'sub/extra': 'deleted' });
    // Into a target that does not exist: everything would be restored, and the target stays missing.
    const none = path.join(await tempDir(), 'not-yet');
    const fresh = await restore(none, ['--dry-run']);
    expect(fresh.summary).toMatchObject({ files_restored: 4, files_skipped: 0 });
    await expect(fs.stat(none)).rejects.toThrow(/ENOENT/);
    const both = await cairn(repo, ['restore', 'latest', '--target', t, '--dry-run', '--verify']);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/--verify .* --dry-run/);
  });

  it('--delete removes what the snapshot does not hold, except paths the patterns leave out, and replaces folders in the way', async () => {
    const t = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', t]), 'restore');
    const snapshotState = await state(t);
    await fs.writeFile(inTarget(t, 'sub/extra'), 'extra\n');
    await fs.writeFile(inTarget(t, 'sub/other.log'), 'not in the snapshot, but excluded\n');
    await fs.mkdir(inTarget(t, 'newdir/x'), { recursive: true });
    await fs.writeFile(inTarget(t, 'newdir/x/y'), 'y\n');
    // A folder with entries where a file goes.
    await fs.rm(inTarget(t, 'a.txt'));
    await fs.mkdir(inTarget(t, 'a.txt'));
    await fs.writeFile(inTarget(t, 'a.txt/inner'), 'inner\n');

    // Without --delete the folder stays, and the restore says so and fails.
    const kept = await restore(t, ['--exclude', '*.log']);
    expect(kept.r.code).toBe(1);
    expect(kept.r.out).toMatch(/a folder with entries is in the way \(restore --delete replaces it\)/);
    expect(await fs.readFile(inTarget(t, 'a.txt/inner'), 'utf8')).toBe('inner\n');
    expect(await fs.readFile(inTarget(t, 'sub/extra'), 'utf8')).toBe('extra\n');

    const { r, summary, actions } = await restore(t, ['--delete', '--exclude', '*.log']);
    ok(r, 'restore --delete');
    expect(summary).toMatchObject({ files_deleted: 2, errors: 0 });
    expect(actions).toMatchObject({ 'sub/extra': 'deleted', newdir: 'deleted', 'a.txt': 'updated' });
    expect(await fs.readFile(inTarget(t, 'a.txt'), 'utf8')).toBe('one\n');
    expect(await fs.readFile(inTarget(t, 'sub/other.log'), 'utf8')).toMatch(/excluded/);
    await fs.rm(inTarget(t, 'sub/other.log'));
    // Excluded from this restore, sub/keep.log is as the first restore left it; the rest is the snapshot again.
    const now = await state(t);
    expect(Object.keys(now).sort()).toEqual(Object.keys(snapshotState).sort());
    for (const [p, v] of Object.entries(snapshotState)) if (p !== path.relative(t, inTarget(t)) && !p.endsWith('/sub')) expect(now[p], p).toBe(v);
  });

  it('replaces a symlink where a folder goes instead of restoring through it', async () => {
    const t = await tempDir();
    const outside = await tempDir();
    await fs.mkdir(path.dirname(inTarget(t, 'sub')), { recursive: true });
    await fs.symlink(outside, inTarget(t, 'sub'));
    ok(await cairn(repo, ['restore', 'latest', '--target', t]), 'restore');
    expect(await fs.readdir(outside)).toEqual([]);
    expect((await fs.lstat(inTarget(t, 'sub'))).isDirectory()).toBe(true);
    expect((await fs.readFile(inTarget(t, 'sub/b.bin'))).equals(big)).toBe(true);
    // The same when only a folder above is in the target already (a resumed restore).
    const t2 = await tempDir();
    ok(await runCommand('mkdir', ['-p', path.dirname(inTarget(t2, 'sub'))]), 'mkdir');
    await fs.writeFile(path.join(t2, 'unrelated'), 'x');
    await fs.symlink(outside, inTarget(t2, 'sub'));
    ok(await cairn(repo, ['restore', 'latest', '--target', t2, '--overwrite', 'never']), 'restore never');
    expect(await fs.readdir(outside)).toEqual([]);
  });
});
