import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archiver, buildScope } from './archiver.js';
import { LocalBackend } from '../backend/local.js';
import { Repository } from '../repository/repository.js';
import { WorkerPool } from '../repository/worker-pool.js';
import { restoreTree } from '../restorer/restorer.js';
import { HAVE_RESTIC, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../../test/support/tools.js';
import { compareTrees, describeTree } from '../../test/support/trees.js';

describe('changed-paths scope', () => {
  it('covers a changed path and everything below it, and leads to it from above', () => {
    const s = buildScope(['/a/b', '/a/b/c', '/x/'])!;
    expect(s.all).toBe(false);
    expect([...s.children.keys()].sort()).toEqual(['a', 'x']);
    expect(s.children.get('a')!.children.get('b')!.all).toBe(true);
    expect(s.children.get('a')!.children.get('b')!.children.size).toBe(0);
    expect(s.children.get('x')!.all).toBe(true);
    expect(buildScope(undefined)).toBeNull();
  });
});

describe('a backup of changed paths only', () => {
  let paths: TestRepo;
  let repo: Repository;
  let pool: WorkerPool;
  let src: string;

  beforeAll(async () => {
    paths = await makeRepoPaths();
    const password = (await fs.readFile(paths.passwordFile, 'utf8')).split('\n')[0];
    repo = await Repository.init(new LocalBackend(paths.dir), password, { kdf: { N: 1024, r: 8, p: 1 } });
    pool = new WorkerPool(repo, { packSize: 512 * 1024 });
    src = await tempDir();
  });
  afterAll(async () => pool?.close());

  async function restored(tree: string): Promise<string> {
    const target = await tempDir();
    const r = await restoreTree(repo, pool, tree, '/', { target });
    expect(r.errors).toEqual([]);
    return path.join(target, src);
  }

  it('looks only at what changed, carries creates, changes, renames, moves and deletes, and takes the rest from the parent', async () => {
    const w = (p: string, data: string) => fs.mkdir(path.dirname(path.join(src, p)), { recursive: true }).then(() => fs.writeFile(path.join(src, p), data));
    await w('keep/a.txt', 'a1');
    await w('keep/deep/b.txt', 'b1');
    await w('docs/changed.txt', 'c1');
    await w('docs/unreported.txt', 'u1');
    await w('docs/old-name.txt', 'rename me');
    await w('docs/gone.txt', 'delete me');
    await w('from/moved.txt', 'move me');
    await w('to/.keep', '');
    const first = await new Archiver(repo, pool, { paths: [src] }).run();

    await w('docs/changed.txt', 'c2 longer');
    await w('docs/unreported.txt', 'u2 changed but nobody said so');
    await fs.rename(path.join(src, 'docs/old-name.txt'), path.join(src, 'docs/new-name.txt'));
    await fs.rm(path.join(src, 'docs/gone.txt'));
    await fs.rename(path.join(src, 'from/moved.txt'), path.join(src, 'to/moved.txt'));
    await w('new/dir/created.txt', 'fresh');
    const changed = ['docs/changed.txt', 'docs/old-name.txt', 'docs/new-name.txt', 'docs/gone.txt', 'from/moved.txt', 'to/moved.txt', 'new'].map((p) => path.join(src, p));
    const second = await new Archiver(repo, pool, { paths: [src], parent: first.snapshot, changedPaths: changed }).run();

    const got = await restored(second.snapshot.tree);
    const read = (p: string) => fs.readFile(path.join(got, p), 'utf8');
    expect(await read('docs/changed.txt')).toBe('c2 longer');
    expect(await read('docs/new-name.txt')).toBe('rename me');
    expect(await read('to/moved.txt')).toBe('move me');
    expect(await read('new/dir/created.txt')).toBe('fresh');
    expect(await read('keep/deep/b.txt')).toBe('b1');
    // Nobody reported it, so it was not even looked at: the parent's version stands.
    expect(await read('docs/unreported.txt')).toBe('u1');
    for (const p of ['docs/old-name.txt', 'docs/gone.txt', 'from/moved.txt']) await expect(fs.stat(path.join(got, p))).rejects.toThrow(/ENOENT/);
    // The untouched folder is the parent's tree, byte for byte: same subtree id.
    const rootOf = async (tree: string) => {
      let t = await repo.loadTree(tree);
      for (const part of src.split('/').filter(Boolean)) t = await repo.loadTree(t.nodes.find((n) => n.name === part)!.subtree!);
      return t;
    };
    const keep1 = (await rootOf(first.snapshot.tree)).nodes.find((n) => n.name === 'keep')!;
    const keep2 = (await rootOf(second.snapshot.tree)).nodes.find((n) => n.name === 'keep')!;
    expect(keep2.subtree).toBe(keep1.subtree);
    expect(second.summary.files_new).toBe(3);
    expect(second.summary.files_changed).toBe(1);

    // A full backup afterwards sees the unreported change too, and matches the tree exactly.
    const third = await new Archiver(repo, pool, { paths: [src], parent: second.snapshot }).run();
    const full = await restored(third.snapshot.tree);
    expect(compareTrees(await describeTree(src), await describeTree(full), 1000n)).toEqual([]);
    if (HAVE_RESTIC) ok(await restic(paths, ['check', '--read-data']), 'restic check');
  });

  it('a changed path that no longer exists anywhere is simply absent, and a path outside the sources is ignored', async () => {
    const parent = await new Archiver(repo, pool, { paths: [src] }).run();
    await fs.rm(path.join(src, 'new'), { recursive: true });
    const r = await new Archiver(repo, pool, { paths: [src], parent: parent.snapshot, changedPaths: [path.join(src, 'new/dir/created.txt'), path.join(src, 'new'), '/elsewhere/x'] }).run();
    expect(r.errors).toEqual([]);
    const got = await restored(r.snapshot.tree);
    expect(compareTrees(await describeTree(src), await describeTree(got), 1000n)).toEqual([]);
  });

  it('keeps tagged folders and large files out when only changed paths are looked at, as a full walk does', async () => {
    const root = await tempDir();
    const w = (p: string, data: string | Buffer) => fs.mkdir(path.dirname(path.join(root, p)), { recursive: true }).then(() => fs.writeFile(path.join(root, p), data));
    await w('cache/CACHEDIR.TAG', 'Signature: 8a477f597d28d172789f06886806bc55');
    await w('cache/old', 'old');
    await w('work/small', 'x'.repeat(100));
    const lists = { exclude: [], iexclude: [], tags: [{ name: 'CACHEDIR.TAG', header: 'Signature: 8a477f597d28d172789f06886806bc55' }], largerThan: 1000 };
    const first = await new Archiver(repo, pool, { paths: [root], excludeLists: lists }).run();
    await w('cache/new', 'new');
    await w('cache/sub/deeper', 'deeper');
    await w('work/grown', 'y'.repeat(1001));
    await w('work/small2', 'z'.repeat(1000));
    const changed = ['cache/new', 'cache/sub', 'work/grown', 'work/small2'].map((p) => path.join(root, p));
    const second = await new Archiver(repo, pool, { paths: [root], parent: first.snapshot, changedPaths: changed, excludeLists: lists }).run();
    const full = await new Archiver(repo, pool, { paths: [root], excludeLists: lists }).run();
    const names = async (tree: string): Promise<string[]> => {
      const out: string[] = [];
      const walk = async (id: string, at: string): Promise<void> => {
        for (const n of (await repo.loadTree(id)).nodes) {
          const p = `${at}/${n.name}`;
          if (p.startsWith(root) || root.startsWith(p)) {
            if (p.startsWith(`${root}/`)) out.push(p.slice(root.length + 1));
            if (n.subtree) await walk(n.subtree, p);
          }
        }
      };
      await walk(tree, '');
      return out.sort();
    };
    expect(await names(second.snapshot.tree)).toEqual(['cache', 'cache/CACHEDIR.TAG', 'work', 'work/small', 'work/small2']);
    expect(await names(full.snapshot.tree)).toEqual(await names(second.snapshot.tree));
  });
});
