import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, makeOddTree } from '../support/trees.js';

interface LsNode {
  name: string;
  type: string;
  path: string;
  uid: number;
  gid: number;
  size?: number;
  mode?: number;
  mtime: string;
  struct_type: string;
}

function lsLines(out: string): (LsNode & Record<string, unknown>)[] {
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LsNode & Record<string, unknown>);
}

describe.runIf(HAVE_RESTIC)('Cairn writes, restic reads', () => {
  let repo: TestRepo;
  let src: string;
  let close: () => Promise<void>;

  beforeAll(async () => {
    repo = await makeRepoPaths();
    src = path.join(await tempDir(), 'src');
    close = (await makeOddTree(src)).close;
    ok(await cairn(repo, ['init']), 'cairn init');
    ok(await cairn(repo, ['backup', src, '--tag', 'odd']), 'cairn backup');
  });
  afterAll(async () => close?.());

  it('restic check --read-data accepts the repository', async () => {
    const r = ok(await restic(repo, ['check', '--read-data']), 'restic check');
    expect(r.out).toContain('no errors were found');
  });

  it('restic restores a tree identical in content and metadata', async () => {
    const target = await tempDir();
    ok(await restic(repo, ['restore', 'latest', '--target', target]), 'restic restore');
    const want = await describeTree(src, { skipSockets: true });
    const got = await describeTree(path.join(target, src), { skipSockets: true });
    expect(compareTrees(want, got)).toEqual([]);
  });

  it('restic snapshots and ls show what cairn shows', async () => {
    const rs = JSON.parse(ok(await restic(repo, ['snapshots', '--json']), 'restic snapshots').out) as Record<string, unknown>[];
    const cs = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'cairn snapshots').out) as Record<string, unknown>[];
    expect(rs).toHaveLength(1);
    for (const k of ['id', 'short_id', 'time', 'tree', 'paths', 'hostname', 'username', 'tags']) expect(cs[0][k]).toEqual(rs[0][k]);
    expect(rs[0].paths).toEqual([src]);

    const rl = lsLines(ok(await restic(repo, ['ls', '--json', 'latest']), 'restic ls').out);
    const cl = lsLines(ok(await cairn(repo, ['ls', '--json', 'latest']), 'cairn ls').out);
    expect(cl.length).toBe(rl.length);
    for (let i = 0; i < rl.length; i++) {
      for (const k of ['name', 'type', 'path', 'uid', 'gid', 'size', 'mode', 'permissions', 'mtime', 'atime', 'ctime', 'struct_type']) {
        expect([rl[i].path, k, cl[i][k]]).toEqual([rl[i].path, k, rl[i][k]]);
      }
    }
  });
});

describe.runIf(HAVE_RESTIC)('restic writes, Cairn reads', () => {
  for (const compression of ['auto', 'off'] as const) {
    it(`reads, restores and checks a restic repository (compression ${compression}), then adds to it`, async () => {
      const repo = await makeRepoPaths();
      const src = path.join(await tempDir(), 'src');
      const { close } = await makeOddTree(src);
      try {
        ok(await restic(repo, ['init']), 'restic init');
        ok(await restic(repo, ['backup', '--compression', compression, src]), 'restic backup');
        const snaps = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'cairn snapshots').out) as { paths: string[] }[];
        expect(snaps).toHaveLength(1);
        expect(snaps[0].paths).toEqual([src]);
        const rl = lsLines(ok(await restic(repo, ['ls', '--json', 'latest']), 'restic ls').out);
        const cl = lsLines(ok(await cairn(repo, ['ls', '--json', 'latest']), 'cairn ls').out);
        expect(cl.map((n) => [n.path, n.type, n.size, n.mode])).toEqual(rl.map((n) => [n.path, n.type, n.size, n.mode]));

        const target = await tempDir();
        ok(await cairn(repo, ['restore', 'latest', '--target', target]), 'cairn restore');
        // Node sets times through a double, so compare them to the microsecond.
        expect(compareTrees(await describeTree(src, { skipSockets: true }), await describeTree(path.join(target, src), { skipSockets: true }), 1000n)).toEqual([]);
        ok(await cairn(repo, ['check', '--read-data']), 'cairn check');

        await fs.writeFile(path.join(src, 'added-by-cairn.txt'), 'new file\n');
        ok(await cairn(repo, ['backup', src]), 'cairn backup into restic repo');
        ok(await restic(repo, ['check', '--read-data']), 'restic check after cairn backup');
        const t2 = await tempDir();
        ok(await restic(repo, ['restore', 'latest', '--target', t2]), 'restic restore of cairn snapshot');
        expect(await fs.readFile(path.join(t2, src, 'added-by-cairn.txt'), 'utf8')).toBe('new file\n');
      } finally {
        await close();
      }
    });
  }
});

describe.runIf(HAVE_RESTIC)('names that are not UTF-8', () => {
  const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
  const dirRaw = Buffer.concat([latin1('dossier-'), Buffer.from([0xe9])]);
  const fileRaw = Buffer.concat([latin1('r'), Buffer.from([0xe9]), latin1('sum'), Buffer.from([0xe9, 0xff]), latin1('.txt')]);

  async function makeTree(root: string): Promise<void> {
    const rootB = Buffer.from(root);
    const dir = Buffer.concat([rootB, Buffer.from('/'), dirRaw]);
    await fs.mkdir(dir);
    await fs.writeFile(Buffer.concat([dir, Buffer.from('/'), fileRaw]), 'contenu\n');
    await fs.writeFile(Buffer.concat([rootB, Buffer.from('/'), fileRaw]), 'at the top\n');
    await fs.writeFile(path.join(root, 'plain.txt'), 'plain\n');
  }

  async function namesUnder(root: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: Buffer, rel: string): Promise<void> => {
      for (const e of await fs.readdir(dir, { encoding: 'buffer', withFileTypes: true })) {
        const name = e.name as unknown as Buffer;
        const r = `${rel}/${name.toString('hex')}`;
        const full = Buffer.concat([dir, Buffer.from('/'), name]);
        out.push(`${r}:${e.isDirectory() ? 'dir' : (await fs.readFile(full)).toString()}`);
        if (e.isDirectory()) await walk(full, r);
      }
    };
    await walk(Buffer.from(root), '');
    return out.sort();
  }

  it('Cairn keeps them byte for byte, restic restores them, and the reverse', async () => {
    const src = path.join(await tempDir(), 'src');
    await fs.mkdir(src);
    await makeTree(src);
    const want = await namesUnder(src);
    expect(want).toHaveLength(4);

    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'cairn backup');
    ok(await restic(repo, ['check', '--read-data']), 'restic check');
    const t1 = await tempDir();
    ok(await restic(repo, ['restore', 'latest', '--target', t1]), 'restic restore');
    expect(await namesUnder(path.join(t1, src))).toEqual(want);
    const t2 = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', t2]), 'cairn restore');
    expect(await namesUnder(path.join(t2, src))).toEqual(want);
    const again = JSON.parse(ok(await cairn(repo, ['--json', 'backup', src]), 'unchanged backup').out.trim().split('\n').pop()!) as Record<string, number>;
    expect(again).toMatchObject({ files_new: 0, files_changed: 0, files_unmodified: 3 });

    // A symlink whose target is not UTF-8 keeps its exact bytes (restic 0.17's linktarget_raw).
    const rawTarget = Buffer.concat([Buffer.from('../'), dirRaw]);
    await fs.symlink(rawTarget, path.join(src, 'link-raw'));
    ok(await cairn(repo, ['backup', src]), 'backup with raw link');
    ok(await restic(repo, ['check']), 'restic check with raw link');
    const t4 = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', t4]), 'cairn restore raw link');
    expect((await fs.readlink(path.join(t4, src, 'link-raw'), { encoding: 'buffer' })).equals(rawTarget)).toBe(true);
    await fs.rm(path.join(src, 'link-raw'));

    const repo2 = await makeRepoPaths();
    ok(await restic(repo2, ['init']), 'restic init');
    ok(await restic(repo2, ['backup', src]), 'restic backup');
    const t3 = await tempDir();
    ok(await cairn(repo2, ['restore', 'latest', '--target', t3]), 'cairn restore of restic backup');
    expect(await namesUnder(path.join(t3, src))).toEqual(want);
  });
});

describe.runIf(HAVE_RESTIC)('extended attributes', () => {
  it('are kept both ways between Cairn and restic', async () => {
    const { createRequire } = await import('node:module');
    const xattr = createRequire(import.meta.url)('@napi-rs/xattr') as {
      setAttributeSync(p: string, n: string, v: Buffer): void;
      getAttributeSync(p: string, n: string): Buffer | null;
    };
    const src = path.join(await tempDir(), 'src');
    await fs.mkdir(path.join(src, 'dir'), { recursive: true });
    await fs.writeFile(path.join(src, 'dir', 'tagged.txt'), 'tagged\n');
    const value = Buffer.from([0, 1, 2, 0xff, 0x68, 0x69]);
    xattr.setAttributeSync(path.join(src, 'dir', 'tagged.txt'), 'user.cairn.test', value);
    xattr.setAttributeSync(path.join(src, 'dir'), 'user.on.dir', Buffer.from('folder'));

    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'cairn backup');
    const t1 = await tempDir();
    ok(await restic(repo, ['restore', 'latest', '--target', t1]), 'restic restore');
    expect(xattr.getAttributeSync(path.join(t1, src, 'dir', 'tagged.txt'), 'user.cairn.test')).toEqual(value);
    expect(xattr.getAttributeSync(path.join(t1, src, 'dir'), 'user.on.dir')?.toString()).toBe('folder');

    const repo2 = await makeRepoPaths();
    ok(await restic(repo2, ['init']), 'restic init');
    ok(await restic(repo2, ['backup', src]), 'restic backup');
    const t2 = await tempDir();
    ok(await cairn(repo2, ['restore', 'latest', '--target', t2]), 'cairn restore');
    expect(xattr.getAttributeSync(path.join(t2, src, 'dir', 'tagged.txt'), 'user.cairn.test')).toEqual(value);
    expect(xattr.getAttributeSync(path.join(t2, src, 'dir'), 'user.on.dir')?.toString()).toBe('folder');
  });
});
