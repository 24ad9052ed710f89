import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, resticSnapshots, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, seededBytes } from '../support/trees.js';

const snapshots = resticSnapshots;
const paths = async (repo: TestRepo, id: string): Promise<string[]> =>
  ok(await restic(repo, ['ls', id]), 'restic ls').out.trim().split('\n').slice(1).sort();

describe.runIf(HAVE_RESTIC)('rewrite', () => {
  it('leaves out what exclude patterns match, keeps everything else byte for byte, and restic reads the result', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const files: Record<string, Buffer | string> = {
      'keep.txt': 'keep',
      'secret.env': 'TOKEN=1',
      'sub/secret.env': 'TOKEN=2',
      'sub/data.bin': seededBytes(51, 700_000),
      'cache/x': 'cached',
      'deep/a/b/c.txt': 'deep',
    };
    for (const [f, content] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(src, f)), { recursive: true });
      await fs.writeFile(path.join(src, f), content);
    }
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', '--tag', 'nightly', src]), 'backup 1');
    await fs.writeFile(path.join(src, 'keep.txt'), 'keep, changed');
    ok(await cairn(repo, ['backup', src]), 'backup 2');
    const before = await snapshots(repo);
    expect(before).toHaveLength(2);

    const dry = ok(await cairn(repo, ['rewrite', '--dry-run', '--exclude', 'secret.env', '--exclude', `${src}/cache`]), 'dry run').out;
    expect(dry).toContain(`excluding ${src}/sub/secret.env`);
    expect(dry).toContain('would modify 2 of 2 snapshots');
    expect((await snapshots(repo)).map((s) => s.id)).toEqual(before.map((s) => s.id));

    const out = JSON.parse(ok(await cairn(repo, ['--json', 'rewrite', '--exclude', 'secret.env', '--exclude', `${src}/cache`]), 'rewrite').out) as { snapshots: { id: string; new_id: string; excluded: string[] }[] };
    expect(out.snapshots.map((s) => s.excluded.sort())).toEqual(before.map(() => [`${src}/cache`, `${src}/secret.env`, `${src}/sub/secret.env`]));
    ok(await restic(repo, ['check', '--read-data']), 'restic check');
    const after = await snapshots(repo);
    expect(after).toHaveLength(4);
    for (const r of out.snapshots) {
      const old = before.find((s) => s.id === r.id)!;
      const fresh = after.find((s) => s.id === r.new_id)!;
      expect(fresh).toMatchObject({ time: old.time, paths: old.paths, hostname: old.hostname, tags: [...(old.tags ?? []), 'rewrite'], original: old.id });
      expect(fresh.summary).toBeUndefined();
      const oldPaths = await paths(repo, old.id);
      expect(await paths(repo, fresh.id)).toEqual(oldPaths.filter((p) => !p.endsWith('secret.env') && !p.startsWith(`${src}/cache`)));
      // What stays restores as the original does.
      const [a, b] = [await tempDir(), await tempDir()];
      ok(await restic(repo, ['restore', old.id, '--target', a, '--exclude', 'secret.env', '--exclude', `${src}/cache`]), 'restore old');
      ok(await restic(repo, ['restore', fresh.id, '--target', b]), 'restore new');
      expect(compareTrees(await describeTree(path.join(a, src)), await describeTree(path.join(b, src)), 1000n)).toEqual([]);
    }
    // A folder that lost nothing keeps its tree.
    const subtree = async (id: string, dir: string): Promise<string> => {
      let tree = JSON.parse(ok(await restic(repo, ['cat', 'snapshot', id]), 'cat').out).tree as string;
      for (const part of [...src.split('/').filter(Boolean), dir]) {
        const t = JSON.parse(ok(await restic(repo, ['cat', 'blob', tree]), 'cat tree').out) as { nodes: { name: string; subtree?: string }[] };
        tree = t.nodes.find((n) => n.name === part)!.subtree!;
      }
      return tree;
    };
    expect(await subtree(out.snapshots[0].new_id, 'deep')).toBe(await subtree(out.snapshots[0].id, 'deep'));

    // Nothing left to exclude: not modified.
    const again = ok(await cairn(repo, ['rewrite', out.snapshots[1].new_id.slice(0, 8), '--exclude', 'secret.env']), 'again').out;
    expect(again).toContain('not modified');
    expect(again).toContain('modified 0 of 1 snapshots');
    // --forget: the original goes, no tag is added, and original still names the first of the line.
    const last = JSON.parse(ok(await cairn(repo, ['--json', 'rewrite', '--forget', out.snapshots[1].new_id, '--exclude', 'deep']), 'forget').out) as { snapshots: { new_id: string }[] };
    const now = await snapshots(repo);
    expect(now.map((s) => s.id)).not.toContain(out.snapshots[1].new_id);
    expect(now.find((s) => s.id === last.snapshots[0].new_id)).toMatchObject({ tags: ['rewrite'], original: out.snapshots[1].id });
    ok(await restic(repo, ['check']), 'restic check after forget');

    const none = await cairn(repo, ['rewrite']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('nothing to do');
  });
});
