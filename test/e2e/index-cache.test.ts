import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cairn, makeRepoPaths, ok, tempDir, type TestRepo } from '../support/tools.js';
import { describeTree, compareTrees, seededBytes } from '../support/trees.js';

/** The files in a folder and below it, relative. */
async function filesUnder(dir: string): Promise<string[]> {
  return (await fs.readdir(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('the index cache, from the command line', () => {
  let repo: TestRepo;
  let src: string;
  let cacheDir: string;
  let repoId: string;
  beforeAll(async () => {
    repo = await makeRepoPaths();
    cacheDir = repo.env.CAIRN_CACHE_DIR!;
    src = await tempDir();
    for (let i = 0; i < 5; i++) await fs.writeFile(path.join(src, `f${i}`), seededBytes(i, 300_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    repoId = JSON.parse(ok(await cairn(repo, ['cat', 'config']), 'cat config').out).id as string;
  });

  it('is written by the first command that reads the index, into CAIRN_CACHE_DIR, and nothing else is', async () => {
    // A backup into a new repository reads no index file, so writes no cache.
    await expect(fs.access(cacheDir)).rejects.toThrow(/ENOENT/);
    ok(await cairn(repo, ['ls', 'latest']), 'ls');
    expect(await filesUnder(cacheDir)).toEqual(['CACHEDIR.TAG', `${repoId}/index`].sort());
    expect(((await fs.stat(path.join(cacheDir, repoId, 'index'))).mode & 0o777).toString(8)).toBe('600');
  });

  it('--cache-dir puts it elsewhere, --no-cache writes none', async () => {
    const other = path.join(await tempDir(), 'c');
    ok(await cairn(repo, ['--cache-dir', other, 'ls', 'latest']), 'ls --cache-dir');
    expect(await filesUnder(other)).toEqual(['CACHEDIR.TAG', `${repoId}/index`].sort());
    const none = path.join(await tempDir(), 'c');
    ok(await cairn(repo, ['--no-cache', 'ls', 'latest'], { env: { CAIRN_CACHE_DIR: none } }), 'ls --no-cache');
    await expect(fs.access(none)).rejects.toThrow(/ENOENT/);
  });

  it('stands in for a damaged index file until the file is needed by check; --no-cache reads the file', async () => {
    const damaged = await makeRepoPaths();
    ok(await cairn(damaged, ['init']), 'init');
    ok(await cairn(damaged, ['backup', src]), 'backup');
    ok(await cairn(damaged, ['ls', 'latest']), 'ls (writes the cache)');
    const [idx] = await fs.readdir(path.join(damaged.dir, 'index'));
    const file = path.join(damaged.dir, 'index', idx);
    const bytes = await fs.readFile(file);
    await fs.chmod(file, 0o600);
    await fs.writeFile(file, bytes.subarray(0, bytes.length - 10));

    // As restic with its cache: what the cache holds restores; the repository's damage is check's to find.
    const target = await tempDir();
    ok(await cairn(damaged, ['restore', 'latest', '--target', target]), 'restore from the cache');
    expect(compareTrees(await describeTree(src), await describeTree(path.join(target, src)), 1000n)).toEqual([]);
    const check = await cairn(damaged, ['check']);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toContain(`index ${idx}`);
    const plain = await cairn(damaged, ['--no-cache', 'restore', 'latest', '--target', await tempDir()]);
    expect(plain.code).toBe(1);
    expect(plain.stderr).toContain(`index ${idx}`);
  });

  it('a cache folder that cannot be written: a warning, and the command does its work', async () => {
    const blocker = path.join(await tempDir(), 'file');
    await fs.writeFile(blocker, 'x');
    const target = await tempDir();
    const r = ok(await cairn(repo, ['--cache-dir', path.join(blocker, 'cache'), 'restore', 'latest', '--target', target]), 'restore');
    expect(r.stderr).toMatch(/^Warning: cannot write the index cache in .*\/file\/cache: ENOTDIR \(going on without it; --no-cache turns it off\)$/m);
    expect(compareTrees(await describeTree(src), await describeTree(path.join(target, src)), 1000n)).toEqual([]);
  });
});
