import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../../src/backend/local.js';
import { Repository } from '../../src/repository/repository.js';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../support/tools.js';
import { seededBytes } from '../support/trees.js';

/** Packs by type, read from the repository's index with Cairn's own library. */
async function packsByType(repo: TestRepo): Promise<{ data: Set<string>; tree: Set<string> }> {
  const password = (await fs.readFile(repo.passwordFile, 'utf8')).split('\n')[0];
  const r = await Repository.open(new LocalBackend(repo.dir), password);
  try {
    await r.loadIndex();
    const out = { data: new Set<string>(), tree: new Set<string>() };
    for (const [, loc] of r.index.entries()) out[loc.type].add(loc.packId);
    return out;
  } finally {
    await r.close();
  }
}

describe.runIf(HAVE_RESTIC)('repair snapshots', () => {
  it('rewrites snapshots that reference lost packs: files lose missing content, lost folders become empty, --forget removes the damaged ones', async () => {
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const src = path.join(await tempDir(), 'src');
    const kept = seededBytes(1, 300_000);
    await fs.mkdir(path.join(src, 'a'), { recursive: true });
    await fs.mkdir(path.join(src, 'b'));
    await fs.writeFile(path.join(src, 'a', 'x'), kept);
    await fs.writeFile(path.join(src, 'b', 'z'), seededBytes(2, 100_000));
    ok(await cairn(repo, ['backup', src]), 'first backup');
    const first = await packsByType(repo);
    // The second snapshot reuses a/ and b/ from the first (their trees live in the first tree pack),
    // a copy of a/x (its data lives in the first data pack) and one new file (in a new data pack).
    await fs.mkdir(path.join(src, 'c'));
    await fs.writeFile(path.join(src, 'c', 'copy-of-x'), kept);
    await fs.writeFile(path.join(src, 'c', 'fresh'), seededBytes(3, 200_000));
    ok(await cairn(repo, ['backup', src]), 'second backup');
    const both = await packsByType(repo);
    const lost = [...first.tree, ...[...both.data].filter((p) => !first.data.has(p))];
    expect(lost.length).toBeGreaterThanOrEqual(2);
    for (const p of lost) await fs.rm(path.join(repo.dir, 'data', p.slice(0, 2), p));

    ok(await cairn(repo, ['repair', 'index']), 'repair index');
    const before = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as { id: string }[];
    expect(before).toHaveLength(2);

    const dry = ok(await cairn(repo, ['repair', 'snapshots', '--forget', '--dry-run']), 'dry run');
    expect(dry.out).toMatch(/would be repaired \(dry run: nothing changed\)/);
    expect((JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as unknown[]).length).toBe(2);

    const r = ok(await cairn(repo, ['repair', 'snapshots', '--forget']), 'repair snapshots');
    const at = src.replace(/^\//, '/');
    expect(r.out).toContain(`file "${at}/c/fresh": removed missing content`);
    expect(r.out).toContain(`dir "${at}/a": replaced with empty directory`);
    expect(r.out).toContain(`dir "${at}/b": replaced with empty directory`);
    expect(r.out).toMatch(new RegExp(`snapshot ${before[0].id.slice(0, 8)}: root tree \\w+ cannot be loaded: the snapshot cannot be repaired and is removed`));
    expect(r.out).toMatch(new RegExp(`snapshot ${before[1].id.slice(0, 8)} repaired as \\w{8}; the damaged one is removed`));

    const after = JSON.parse(ok(await restic(repo, ['snapshots', '--json']), 'restic snapshots').out) as { id: string; tags?: string[]; original?: string }[];
    expect(after).toHaveLength(1);
    expect(after[0].tags).toEqual(['repaired']);
    expect(after[0].original).toBe(before[1].id);
    ok(await restic(repo, ['check', '--read-data']), 'restic check after the repair');

    const target = await tempDir();
    ok(await restic(repo, ['restore', after[0].id, '--target', target]), 'restic restore');
    const out = path.join(target, src);
    expect(await fs.readFile(path.join(out, 'c', 'copy-of-x'))).toEqual(kept);
    expect((await fs.stat(path.join(out, 'c', 'fresh'))).size).toBe(0);
    expect(await fs.readdir(path.join(out, 'a'))).toEqual([]);
    expect(await fs.readdir(path.join(out, 'b'))).toEqual([]);

    // Nothing left to repair, and a new backup into the repaired repository works.
    expect(ok(await cairn(repo, ['repair', 'snapshots']), 'second repair').out).toMatch(/1 snapshots checked, none needs repair/);
    ok(await cairn(repo, ['backup', src]), 'backup after the repair');
    ok(await restic(repo, ['check']), 'restic check after the next backup');
  });
});
