import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, seededBytes, textBytes } from '../support/trees.js';

async function dataPacks(repo: TestRepo): Promise<string[]> {
  const out: string[] = [];
  for (const d of await fs.readdir(path.join(repo.dir, 'data'))) {
    for (const f of await fs.readdir(path.join(repo.dir, 'data', d))) out.push(f);
  }
  return out.sort();
}

async function dirSize(dir: string): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += (await fs.stat(path.join(e.parentPath, e.name))).size;
  }
  return n;
}

interface TreeJSON {
  nodes: { name: string; type: string; subtree?: string; content?: string[] | null }[];
}

/** The tree of folder `dir` in the latest snapshot, read with `cairn cat`. */
async function latestTreeOf(repo: TestRepo, dir: string): Promise<TreeJSON> {
  const snap = JSON.parse(ok(await cairn(repo, ['cat', 'snapshot', 'latest']), 'cat snapshot').out) as { tree: string };
  let tree = JSON.parse(ok(await cairn(repo, ['cat', 'tree', snap.tree]), 'cat tree').out) as TreeJSON;
  for (const part of dir.split('/').filter(Boolean)) {
    const sub = tree.nodes.find((n) => n.name === part)?.subtree;
    if (!sub) throw new Error(`${dir}: no folder ${part} in the snapshot`);
    tree = JSON.parse(ok(await cairn(repo, ['cat', 'tree', sub]), 'cat tree').out) as TreeJSON;
  }
  return tree;
}

describe('backup and restore round trips', () => {
  it('restores generated trees byte-identical (0 B to 20 MiB, random and compressible)', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const sizes = [0, 1, 511, 4096, 524_287, 524_288, 524_289, 1_048_576, 3_000_001, 8 * 1024 * 1024 + 3, 20 * 1024 * 1024];
    let seed = 1;
    for (const size of sizes) {
      await fs.writeFile(path.join(src, `random-${size}`), seededBytes(seed++, size));
      await fs.writeFile(path.join(src, `text-${size}`), textBytes(seed++, size));
    }
    await fs.mkdir(path.join(src, 'a/b/c'), { recursive: true });
    await fs.writeFile(path.join(src, 'a/b/c/nested'), seededBytes(99, 12345));
    // Blobs that several files need: whole copies, and a file that holds another twice over.
    await fs.copyFile(path.join(src, 'random-3000001'), path.join(src, 'a/copy-of-random'));
    await fs.copyFile(path.join(src, 'text-1048576'), path.join(src, 'a/b/copy-of-text'));
    const twice = seededBytes(5, 1_500_000);
    await fs.writeFile(path.join(src, 'twice'), Buffer.concat([twice, twice]));
    await fs.writeFile(path.join(src, 'a/b/c/once'), twice);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    const target = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', target, '--verify']), 'restore');
    expect(compareTrees(await describeTree(src), await describeTree(path.join(target, src)), 1000n)).toEqual([]);
    const check = ok(await cairn(repo, ['check', '--read-data']), 'check');
    expect(check.out).toContain('no errors were found');
  });

  it('restores a sparse file sparse', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const fh = await fs.open(path.join(src, 'sparse'), 'w');
    await fh.write(Buffer.from('x'), 0, 1, 64 * 1024 * 1024);
    await fh.close();
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    const target = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', target]), 'restore');
    const st = await fs.stat(path.join(target, src, 'sparse'));
    expect(st.size).toBe(64 * 1024 * 1024 + 1);
    expect(st.blocks * 512).toBeLessThan(1024 * 1024);
  });

  it('resumes an interrupted restore: files already right are skipped, damaged ones rewritten', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (let i = 0; i < 5; i++) await fs.writeFile(path.join(src, `f${i}`), seededBytes(i + 10, 700_000));
    // Files of several blobs each (chunks end at 8 MiB at the latest): one left right, one with a changed byte in its middle.
    await fs.writeFile(path.join(src, 'big-right'), seededBytes(20, 10_000_000));
    await fs.writeFile(path.join(src, 'big-changed'), seededBytes(21, 10_000_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    const listing = await latestTreeOf(repo, src);
    expect(listing.nodes.find((n) => n.name === 'big-changed')!.content!.length).toBeGreaterThan(1);
    const target = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', target]), 'restore');
    await fs.rm(path.join(target, src, 'f1'));
    await fs.writeFile(path.join(target, src, 'f2'), seededBytes(1234, 700_000));
    await fs.truncate(path.join(target, src, 'f3'), 1000);
    const changed = await fs.open(path.join(target, src, 'big-changed'), 'r+');
    await changed.write(Buffer.from([0x55]), 0, 1, 5_000_000);
    await changed.close();
    const r = ok(await cairn(repo, ['--json', 'restore', 'latest', '--target', target]), 'restore again');
    const summary = JSON.parse(r.out.trim().split('\n').pop()!) as { files_restored: number; files_skipped: number };
    expect(summary).toMatchObject({ files_restored: 4, files_skipped: 3 });
    expect(compareTrees(await describeTree(src), await describeTree(path.join(target, src)), 1000n)).toEqual([]);
  });

  it('backs up standard input as one file', async () => {
    const repo = await makeRepoPaths();
    const data = Buffer.concat([seededBytes(3, 3_000_000), textBytes(4, 2_000_000)]);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', '--stdin', '--stdin-filename', 'dump.sql'], { input: data }), 'backup --stdin');
    const dumped = ok(await cairn(repo, ['dump', 'latest', '/dump.sql']), 'dump');
    expect(dumped.stdout.equals(data)).toBe(true);
    if (HAVE_RESTIC) {
      const r = ok(await restic(repo, ['dump', 'latest', '/dump.sql']), 'restic dump');
      expect(r.stdout.equals(data)).toBe(true);
    }
  });
});

describe('deduplication and incremental backups', () => {
  it('a second copy of a 200 MiB file adds under 1 MiB; an unchanged backup writes no pack and reads nothing', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const big = seededBytes(42, 200 * 1024 * 1024);
    await fs.writeFile(path.join(src, 'one.bin'), big);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'first backup');
    const before = await dirSize(repo.dir);
    await fs.writeFile(path.join(src, 'two.bin'), big);
    const second = JSON.parse(ok(await cairn(repo, ['--json', 'backup', src]), 'second backup').out.trim().split('\n').pop()!) as Record<string, number>;
    expect(second.files_new).toBe(1);
    expect(second.files_unmodified).toBe(1);
    expect((await dirSize(repo.dir)) - before).toBeLessThan(1024 * 1024);

    const packs = await dataPacks(repo);
    const third = JSON.parse(ok(await cairn(repo, ['--json', 'backup', src]), 'third backup').out.trim().split('\n').pop()!) as Record<string, number>;
    expect(third).toMatchObject({ files_new: 0, files_changed: 0, files_unmodified: 2, data_added: 0, data_blobs: 0 });
    // Only trees may be new: the folders above the source (/tmp) change their times between runs.
    const added = (await dataPacks(repo)).filter((p) => !packs.includes(p));
    for (const p of added) {
      const header = JSON.parse(ok(await cairn(repo, ['cat', 'header', p]), 'cat header').out) as { type: string }[];
      expect(header.every((b) => b.type === 'tree')).toBe(true);
    }
  });

  it('keeps the tree of an unchanged folder as it was, and gives a new tree to each folder whose entries or attributes changed', async () => {
    const xattr = createRequire(import.meta.url)('@napi-rs/xattr') as {
      setAttributeSync(p: string, n: string, v: Buffer): void;
      getAttributeSync(p: string, n: string): Buffer | null;
    };
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (const d of ['a/b/c', 'a/d', 'e']) await fs.mkdir(path.join(src, d), { recursive: true });
    for (const f of ['a/b/c/f1', 'a/b/f2', 'a/d/f3', 'e/f4', 'f5']) await fs.writeFile(path.join(src, f), textBytes(f.length, 3000));
    xattr.setAttributeSync(path.join(src, 'a/b'), 'user.first', Buffer.from('one'));
    ok(await cairn(repo, ['init']), 'init');
    const treeIds = async (): Promise<Record<string, string>> => {
      const snap = JSON.parse(ok(await cairn(repo, ['cat', 'snapshot', 'latest']), 'cat snapshot').out) as { tree: string };
      const out: Record<string, string> = {};
      const walk = async (id: string, at: string): Promise<void> => {
        const t = JSON.parse(ok(await cairn(repo, ['cat', 'tree', id]), 'cat tree').out) as { nodes: { name: string; type: string; subtree?: string }[] };
        for (const n of t.nodes) {
          if (n.type !== 'dir' || !n.subtree) continue;
          const p = `${at}/${n.name}`;
          if (p.startsWith(src) || src.startsWith(p)) out[p.slice(src.length) || '.'] = n.subtree;
          await walk(n.subtree, p);
        }
      };
      await walk(snap.tree, '');
      return out;
    };
    // The first backup reads every file and folder, which may move their access times (relatime);
    // nodes record the mtime as atime (as restic does without --with-atime), so nothing changes.
    ok(await cairn(repo, ['backup', src]), 'first');
    const first = await treeIds();
    ok(await cairn(repo, ['backup', src]), 'second');
    expect(await treeIds()).toEqual(first);
    ok(await cairn(repo, ['backup', src]), 'unchanged');
    expect(await treeIds()).toEqual(first);

    // A new attribute on a folder moves its ctime: the attribute is read again and the folder's
    // tree and the trees above it change; its siblings keep theirs.
    xattr.setAttributeSync(path.join(src, 'a/b'), 'user.second', Buffer.from('two'));
    await fs.chmod(path.join(src, 'a/b/c/f1'), 0o600);
    ok(await cairn(repo, ['backup', src]), 'after changes');
    const second = await treeIds();
    for (const p of ['.', '/a', '/a/b', '/a/b/c']) expect(second[p], p).not.toBe(first[p]);
    for (const p of ['/a/d', '/e']) expect(second[p], p).toBe(first[p]);

    const target = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', target]), 'restore');
    const b = path.join(target, src, 'a/b');
    expect(xattr.getAttributeSync(b, 'user.first')?.toString()).toBe('one');
    expect(xattr.getAttributeSync(b, 'user.second')?.toString()).toBe('two');
    expect((await fs.stat(path.join(target, src, 'a/b/c/f1'))).mode & 0o777).toBe(0o600);
    if (HAVE_RESTIC) ok(await restic(repo, ['check', '--read-data']), 'restic check');
  });

  it('picks the parent with the same host and paths and reads only changed files', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (let i = 0; i < 10; i++) await fs.writeFile(path.join(src, `f${i}`), textBytes(i, 10_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'first');
    await fs.writeFile(path.join(src, 'f3'), textBytes(100, 10_001));
    const r = ok(await cairn(repo, ['--json', 'backup', src]), 'second');
    const s = JSON.parse(r.out.trim().split('\n').pop()!) as Record<string, number>;
    expect(s).toMatchObject({ files_new: 0, files_changed: 1, files_unmodified: 9 });
    const other = ok(await cairn(repo, ['--json', 'backup', '--host', 'elsewhere', src]), 'other host');
    expect(JSON.parse(other.out.trim().split('\n').pop()!)).toMatchObject({ files_new: 10, files_unmodified: 0 });
  });
});
