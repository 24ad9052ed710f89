/**
 * recover: a snapshot lost by mistake comes back as a folder of a `recovered` snapshot, the same
 * roots restic's recover finds, readable by restic, restorable byte for byte; nothing twice.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, runCommand, tempDir } from '../support/tools.js';
import { seededBytes } from '../support/trees.js';

interface Listed {
  id: string;
  tree: string;
  paths: string[];
  tags?: string[];
}

describe.runIf(HAVE_RESTIC)('recover', () => {
  it('saves the trees no snapshot reaches as a snapshot of /recover, as restic does', async () => {
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const src = path.join(await tempDir(), 'src');
    await fs.mkdir(path.join(src, 'sub'), { recursive: true });
    await fs.writeFile(path.join(src, 'a.txt'), 'first\n');
    await fs.writeFile(path.join(src, 'sub', 'big.bin'), seededBytes(3, 2_000_000));
    ok(await cairn(repo, ['backup', src]), 'backup 1');
    const lostFiles = await fs.readdir(src, { recursive: true });
    await fs.writeFile(path.join(src, 'a.txt'), 'second\n');
    await fs.writeFile(path.join(src, 'new.txt'), 'new\n');
    ok(await cairn(repo, ['backup', src]), 'backup 2');
    const snaps = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as Listed[];
    const lost = snaps.find((s) => !JSON.stringify(s).includes('"parent"'))!;
    await fs.rm(path.join(repo.dir, 'snapshots', lost.id));

    // Nothing is written on a dry run.
    const dry = JSON.parse(ok(await cairn(repo, ['--json', 'recover', '--dry-run']), 'recover --dry-run').out) as { roots: string[]; snapshot_id: string | null };
    expect(dry).toMatchObject({ roots: [lost.tree], snapshot_id: null });
    expect(await fs.readdir(path.join(repo.dir, 'snapshots'))).toHaveLength(1);

    // restic, on a copy, finds the same roots.
    const copyDir = path.join(await tempDir(), 'copy');
    const copy = { ...repo, dir: copyDir, env: { ...repo.env, RESTIC_REPOSITORY: copyDir, CAIRN_REPOSITORY: copyDir, RESTIC_CACHE_DIR: `${copyDir}-cache` } };
    ok(await runCommand('cp', ['-a', repo.dir, copy.dir]), 'cp');
    ok(await restic(copy, ['recover']), 'restic recover');
    const theirs = (JSON.parse(ok(await restic(copy, ['snapshots', '--json', '--tag', 'recovered']), 'restic snapshots').out) as Listed[])[0];

    const out = ok(await cairn(repo, ['recover']), 'recover').out;
    expect(out).toContain(`found 1 unreferenced roots\n  ${lost.tree}\nsaved new snapshot `);
    const ours = (JSON.parse(ok(await cairn(repo, ['snapshots', '--json', '--tag', 'recovered']), 'snapshots recovered').out) as Listed[])[0];
    expect(ours).toMatchObject({ paths: ['/recover'], tags: ['recovered'] });
    // The same listing as restic's recovered snapshot, and restic reads ours.
    const list = async (r: typeof repo, id: string) => (JSON.parse(`[${ok(await restic(r, ['ls', '--json', id]), 'restic ls').out.trim().split('\n').slice(1).join(',')}]`) as { path: string; type: string; size?: number }[]).map((n) => `${n.type} ${n.path} ${n.size ?? ''}`);
    expect(await list(repo, ours.id)).toEqual(await list(copy, theirs.id));
    ok(await restic(repo, ['check', '--read-data']), 'restic check');

    // What was lost restores byte for byte.
    const target = await tempDir();
    ok(await cairn(repo, ['restore', ours.id, '--target', target]), 'restore');
    const back = path.join(target, lost.tree.slice(0, 8), src);
    expect((await fs.readdir(back, { recursive: true })).sort()).toEqual(lostFiles.sort());
    expect(await fs.readFile(path.join(back, 'a.txt'), 'utf8')).toBe('first\n');
    expect((await fs.readFile(path.join(back, 'sub', 'big.bin'))).equals(seededBytes(3, 2_000_000))).toBe(true);

    // Recovered once: the new snapshot reaches the root.
    expect(ok(await cairn(repo, ['recover']), 'recover again').out).toMatch(/found 0 unreferenced roots\nno snapshot to write\.\n$/);
    expect(await fs.readdir(path.join(repo.dir, 'snapshots'))).toHaveLength(2);
  });
});
