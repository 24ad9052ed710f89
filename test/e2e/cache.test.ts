import fs from 'node:fs/promises';
import path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_RCLONE } from '../support/rest-server.js';
import { quietOk, startRemotes, type Remotes } from '../support/remotes.js';
import { cairn, HAVE_RESTIC, makeRepoPaths, ok, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, filesUnder, seededBytes } from '../support/trees.js';


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
    expect(r.stderr).toMatch(/^Warning: cannot write the cache in .*\/file\/cache: ENOTDIR \(going on without it; --no-cache turns it off\)$/m);
    expect(compareTrees(await describeTree(src), await describeTree(path.join(target, src)), 1000n)).toEqual([]);
  });
});

describe('cairn cache', () => {
  it('lists each repository\'s cache with its age and size, keeps it fresh when used, and --cleanup removes the old ones', async () => {
    const a = await makeRepoPaths();
    const cacheDir = a.env.CAIRN_CACHE_DIR!;
    const other = await makeRepoPaths();
    const b = { ...other, env: { ...other.env, CAIRN_CACHE_DIR: cacheDir } };
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'f'), 'x');
    const ids: string[] = [];
    for (const r of [a, b]) {
      ok(await cairn(r, ['init']), 'init');
      ok(await cairn(r, ['backup', src]), 'backup');
      ok(await cairn(r, ['ls', 'latest']), 'ls');
      ids.push((JSON.parse(ok(await cairn(r, ['cat', 'config']), 'cat config').out) as { id: string }).id);
    }
    const longAgo = new Date(Date.now() - 40 * 86_400_000);
    for (const id of ids) await fs.utimes(path.join(cacheDir, id), longAgo, longAgo);
    // Used again: fresh.
    ok(await cairn(a, ['ls', 'latest']), 'ls');

    const listed = JSON.parse(ok(await cairn(a, ['cache', '--json']), 'cache').out) as { id: string; last_used: string; old: boolean; size: number }[];
    expect(listed.map((c) => [c.id, c.old])).toEqual([
      [ids[0], false],
      [ids[1], true],
    ]);
    expect(listed[0].size).toBe((await fs.stat(path.join(cacheDir, ids[0], 'index'))).size);
    expect(Date.parse(listed[1].last_used)).toBe(longAgo.getTime());
    const text = ok(await cairn(a, ['cache']), 'cache').out;
    expect(text).toContain(`${ids[1].slice(0, 8)}    40 days ago    yes`);
    expect(text).toContain(`2 cache dir(s) in ${cacheDir}`);
    expect(text).toContain('1 of them not used for 30 days or more: `cairn cache --cleanup` removes them');
    expect(JSON.parse(ok(await cairn(a, ['cache', '--json', '--max-age', '50']), 'cache').out).map((c: { old: boolean }) => c.old)).toEqual([false, false]);

    expect(ok(await cairn(a, ['cache', '--cleanup']), 'cleanup').out).toContain(`removed 1 old cache(s) from ${cacheDir}: ${ids[1].slice(0, 8)}`);
    expect((await fs.readdir(cacheDir)).sort()).toEqual(['CACHEDIR.TAG', ids[0]].sort());
    expect(ok(await cairn(a, ['cache', '--cleanup']), 'cleanup').out).toContain('no old caches');

    const bad = await cairn(a, ['cache', '--max-age', 'soon']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--max-age must be a whole number of days, not "soon"');
    const off = await cairn(a, ['--no-cache', 'cache']);
    expect(off.code).toBe(1);
    expect(off.stderr).toContain('the cache is turned off');
  });
});

describe.runIf(HAVE_RESTIC && HAVE_RCLONE)('the cache of a remote repository', () => {
  let remotes: Remotes;
  beforeAll(async () => {
    remotes = await startRemotes();
  });
  afterAll(async () => remotes?.stop());

  for (const kind of ['s3', 'rest'] as const) {
    it(`keeps ${kind}: snapshots and tree packs, reads them from there, and drops what the repository no longer has`, async () => {
      const name = `cached-${kind}`;
      const repo = await remotes.repo(kind === 's3' ? `s3:${remotes.s3.endpoint}/cairn/${name}` : `rest:${remotes.rest.url}${name}/`);
      const run = async (...args: string[]) => quietOk(await cairn(repo, args), `cairn ${args.join(' ')}`).out;
      const src = await tempDir();
      await fs.writeFile(path.join(src, 'a'), seededBytes(1, 1000));
      await run('init');
      const id = (JSON.parse(await run('cat', 'config')) as { id: string }).id;
      const cached = async (sub: string): Promise<string[]> => (await filesUnder(path.join(repo.env.CAIRN_CACHE_DIR!, id, sub)).catch(() => [])).map((f) => path.basename(f));
      const snapshotIds = async (): Promise<string[]> => (JSON.parse(await run('snapshots', '--json')) as { id: string }[]).map((s) => s.id).sort();

      await run('backup', src);
      await run('backup', src);
      // Backups keep the snapshots and tree packs they write (the second one read its parent from there).
      expect((await cached('snapshots')).sort()).toEqual(await snapshotIds());
      const treePacks = await cached('data');
      expect(treePacks.length).toBeGreaterThanOrEqual(1);

      // Read from the cache: with the tree packs gone from the repository, ls still lists the tree.
      const packKey = (pack: string): string => `${name}/data/${pack.slice(0, 2)}/${pack}`;
      /** Puts a pack file's bytes into the remote repository, or removes it (null), behind Cairn's back. */
      const onRemote = async (pack: string, bytes: Buffer | null): Promise<void> => {
        if (kind === 'rest') {
          const file = path.join(remotes.restDir, packKey(pack));
          await (bytes ? fs.writeFile(file, bytes) : fs.rm(file));
          return;
        }
        const client = remotes.client();
        await client.send(bytes ? new PutObjectCommand({ Bucket: 'cairn', Key: packKey(pack), Body: bytes }) : new DeleteObjectCommand({ Bucket: 'cairn', Key: packKey(pack) }));
        client.destroy();
      };
      const saved = new Map<string, Buffer>();
      for (const pack of treePacks) {
        const copy = path.join(repo.env.CAIRN_CACHE_DIR!, id, 'data', pack.slice(0, 2), pack);
        saved.set(pack, await fs.readFile(copy));
        await onRemote(pack, null);
      }
      expect(await run('ls', 'latest')).toContain(path.join(src, 'a'));
      const without = await cairn(repo, ['--no-cache', 'ls', 'latest']);
      expect(without.code).not.toBe(0);
      expect(treePacks.some((p) => without.stderr.includes(p))).toBe(true);

      // Damaged copies are not used, nor kept: fetched again once the repository has the packs.
      for (const [pack, bytes] of saved) {
        const copy = path.join(repo.env.CAIRN_CACHE_DIR!, id, 'data', pack.slice(0, 2), pack);
        await fs.writeFile(copy, Buffer.concat([bytes.subarray(0, 10), Buffer.from([bytes[10] ^ 1]), bytes.subarray(11)]));
      }
      expect((await cairn(repo, ['ls', 'latest'])).code).not.toBe(0);
      expect((await cached('data')).length).toBeLessThan(treePacks.length);
      for (const [pack, bytes] of saved) {
        await onRemote(pack, bytes);
      }
      expect(await run('ls', 'latest')).toContain(path.join(src, 'a'));
      expect(await cached('data')).toEqual(treePacks);
      for (const [pack, bytes] of saved) {
        expect(await fs.readFile(path.join(repo.env.CAIRN_CACHE_DIR!, id, 'data', pack.slice(0, 2), pack))).toEqual(bytes);
      }

      // A new tree (and so new trees up to the root); the old snapshots forgotten and their tree
      // packs pruned: the cache lets them go.
      await fs.writeFile(path.join(src, 'b'), 'b');
      await run('backup', src);
      await run('ls', 'latest');
      const beforePrune = await cached('data');
      expect(beforePrune.length).toBeGreaterThanOrEqual(2);
      await run('forget', '--keep-last', '1', '--prune');
      await run('ls', 'latest');
      const kept = await cached('data');
      expect(kept).toHaveLength(1);
      expect(beforePrune).toContain(kept[0]);
      expect(treePacks).not.toContain(kept[0]);
      await run('snapshots');
      expect(await cached('snapshots')).toEqual(await snapshotIds());
      expect(await snapshotIds()).toHaveLength(1);
    });
  }
});
