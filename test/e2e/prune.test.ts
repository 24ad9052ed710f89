import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, seededBytes, textBytes } from '../support/trees.js';

async function repoBytes(repo: TestRepo): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(path.join(repo.dir, 'data'), { recursive: true, withFileTypes: true })) {
    if (e.isFile()) n += (await fs.stat(path.join(e.parentPath, e.name))).size;
  }
  return n;
}

/** Restores snapshot `id` and compares the restored copy of `src` with `src`, content and metadata. */
async function restoresExactly(repo: TestRepo, id: string, src: string): Promise<void> {
  const t = await tempDir();
  ok(await cairn(repo, ['restore', id, '--target', t]), `restore ${id}`);
  expect(compareTrees(await describeTree(src), await describeTree(path.join(t, src)), 1000n)).toEqual([]);
}

/** Ten snapshots of a folder that changes: each round adds files, changes one, deletes one. */
async function tenSnapshots(repo: TestRepo, src: string): Promise<void> {
  for (let round = 0; round < 10; round++) {
    await fs.writeFile(path.join(src, `big-${round}.bin`), seededBytes(1000 + round, 1_200_000));
    await fs.writeFile(path.join(src, `text-${round}.txt`), textBytes(round, 300_000));
    await fs.writeFile(path.join(src, 'changing.txt'), textBytes(500 + round, 80_000));
    if (round >= 2) await fs.rm(path.join(src, `big-${round - 2}.bin`));
    ok(await cairn(repo, ['backup', src]), `backup ${round}`);
  }
}

describe('prune', () => {
  it('after forgetting half of ten snapshots, frees space; restic check --read-data passes and every kept snapshot restores', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    ok(await cairn(repo, ['init']), 'init');
    await tenSnapshots(repo, src);
    const before = await repoBytes(repo);

    const dry = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--dry-run']), 'prune --dry-run').out) as { packsRemoved: number };
    expect(dry.packsRemoved).toBe(0);
    expect(await repoBytes(repo)).toBe(before);

    ok(await cairn(repo, ['forget', '--keep-last', '5']), 'forget');
    const plan = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--dry-run', '--max-unused', '0%']), 'prune --dry-run').out) as { packsRepacked: number };
    expect(plan.packsRepacked).toBeGreaterThan(0);
    const capped = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--dry-run', '--max-unused', '0%', '--max-repack-size', '1K']), 'prune --max-repack-size').out) as { packsRepacked: number };
    expect(capped.packsRepacked).toBe(0);
    const badSize = await cairn(repo, ['prune', '--max-repack-size', 'much']);
    expect(badSize.code).toBe(1);
    expect(badSize.stderr).toMatch(/invalid --max-repack-size "much"/);
    ok(await cairn(repo, ['forget', '--keep-last', '5', '--prune', '--max-unused', '0%']), 'forget --prune');
    const after = await repoBytes(repo);
    expect(after).toBeLessThan(before - 4 * 1_200_000);
    expect(JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out)).toHaveLength(5);

    ok(await cairn(repo, ['check', '--read-data']), 'cairn check --read-data');
    if (HAVE_RESTIC) ok(await restic(repo, ['check', '--read-data']), 'restic check --read-data');
    await restoresExactly(repo, 'latest', src);

    // Nothing left to do: a second prune changes nothing.
    const again = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--max-unused', '0%']), 'prune again').out) as { packsRemoved: number; packsRepacked: number };
    expect(again).toMatchObject({ packsRemoved: 0, packsRepacked: 0 });
    if (HAVE_RESTIC) {
      ok(await restic(repo, ['prune']), 'restic prune on the pruned repository');
      ok(await restic(repo, ['check', '--read-data']), 'restic check after restic prune');
    }
  });

  it.runIf(HAVE_RESTIC)("leaves what restic's prune leaves: tree packs with unused trees and many small packs are repacked under the default limit", async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    ok(await cairn(repo, ['init']), 'init');
    await fs.writeFile(path.join(src, 'steady.txt'), textBytes(7, 200_000));
    // Twelve small backups: each ends with a small data pack and a small tree pack.
    for (let round = 0; round < 12; round++) {
      await fs.writeFile(path.join(src, `r${round}.bin`), seededBytes(round, 300_000));
      await fs.appendFile(path.join(src, 'steady.txt'), `round ${round}\n`);
      if (round >= 2) await fs.rm(path.join(src, `r${round - 2}.bin`));
      ok(await cairn(repo, ['backup', src]), `backup ${round}`);
    }
    ok(await cairn(repo, ['forget', '--keep-last', '5']), 'forget');
    const stats = JSON.parse(ok(await cairn(repo, ['--json', 'prune']), 'prune').out) as { packsRepacked: number; unusedAfter: number };
    expect(stats.packsRepacked).toBeGreaterThanOrEqual(10);
    expect(stats.unusedAfter).toBe(0);
    const theirs = ok(await restic(repo, ['prune', '--dry-run', '-v']), 'restic prune --dry-run').out;
    expect(theirs).toMatch(/to repack:\s+0 blobs/);
    expect(theirs).toMatch(/to delete:\s+0 blobs/);
    ok(await restic(repo, ['check', '--read-data']), 'restic check --read-data');
    const again = JSON.parse(ok(await cairn(repo, ['--json', 'prune']), 'prune again').out) as { packsRepacked: number };
    expect(again.packsRepacked).toBe(0);
    await restoresExactly(repo, 'latest', src);
  });

  it('keeps one copy of blobs stored twice (by backups that did not see each other), and restic agrees', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'big.bin'), seededBytes(11, 2_500_000));
    await fs.writeFile(path.join(src, 'text.txt'), textBytes(12, 400_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'first backup');
    // A second backup that cannot see the first one's index or snapshot stores every blob again.
    const aside = await tempDir();
    for (const dir of ['index', 'snapshots']) await fs.rename(path.join(repo.dir, dir), path.join(aside, dir));
    await fs.mkdir(path.join(repo.dir, 'index'));
    await fs.mkdir(path.join(repo.dir, 'snapshots'));
    ok(await cairn(repo, ['backup', src]), 'second backup');
    for (const dir of ['index', 'snapshots']) {
      for (const f of await fs.readdir(path.join(aside, dir))) await fs.rename(path.join(aside, dir, f), path.join(repo.dir, dir, f));
    }
    const before = await repoBytes(repo);

    const stats = JSON.parse(ok(await cairn(repo, ['--json', 'prune']), 'prune').out) as { packsRemoved: number; blobsRemoved: number; bytesFreed: number; unusedBefore: number; unusedAfter: number };
    expect(stats.packsRemoved).toBeGreaterThan(0);
    expect(stats.blobsRemoved).toBeGreaterThanOrEqual(3);
    expect(stats.unusedAfter).toBe(0);
    const after = await repoBytes(repo);
    // The blobs' bytes and the packs' headers, less the repacked pack's new header.
    expect(before - after).toBe(stats.bytesFreed);
    expect(stats.bytesFreed).toBeGreaterThan(stats.unusedBefore);
    expect(after).toBeLessThan(before / 2 + 100_000);

    ok(await cairn(repo, ['check', '--read-data']), 'cairn check --read-data');
    expect(JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out)).toHaveLength(2);
    if (HAVE_RESTIC) {
      ok(await restic(repo, ['check', '--read-data']), 'restic check --read-data');
      const theirs = ok(await restic(repo, ['prune', '--dry-run', '-v']), 'restic prune --dry-run').out;
      expect(theirs).toMatch(/to repack:\s+0 blobs/);
      expect(theirs).toMatch(/to delete:\s+0 blobs/);
    }
    for (const id of ['latest', (JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as { id: string }[])[0].id]) {
      await restoresExactly(repo, id, src);
    }
  });

  it('refuses, and deletes nothing, when a snapshot needs blobs that no index lists', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'a'), seededBytes(21, 700_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'first backup');
    const firstIndex = new Set(await fs.readdir(path.join(repo.dir, 'index')));
    await fs.writeFile(path.join(src, 'b'), seededBytes(22, 700_000));
    ok(await cairn(repo, ['backup', src]), 'second backup');
    // The second backup's index file is lost: its packs look unreferenced, but its snapshot needs them.
    for (const f of await fs.readdir(path.join(repo.dir, 'index'))) if (!firstIndex.has(f)) await fs.rm(path.join(repo.dir, 'index', f));
    const before = await repoBytes(repo);
    const r = await cairn(repo, ['prune']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/a snapshot needs tree blob [0-9a-f]{64}, which no index lists; run "cairn check"/);
    expect(await repoBytes(repo)).toBe(before);
    ok(await cairn(repo, ['repair', 'index']), 'repair index');
    await restoresExactly(repo, 'latest', src);
  });

  it.runIf(HAVE_RESTIC)('--repack-cacheable-only repacks tree packs and leaves every data pack as it is; restic agrees nothing is left', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    ok(await cairn(repo, ['init']), 'init');
    // A folder that never changes keeps its tree in the first backup's tree pack, whose other trees go unused.
    await fs.mkdir(path.join(src, 'steady'));
    await fs.writeFile(path.join(src, 'steady', 'notes.txt'), textBytes(599, 10_000));
    await fs.mkdir(path.join(src, 'moving'));
    for (let round = 0; round < 4; round++) {
      await fs.writeFile(path.join(src, 'moving', `big-${round}.bin`), seededBytes(200 + round, 1_200_000));
      await fs.writeFile(path.join(src, 'moving', 'changing.txt'), textBytes(600 + round, 80_000));
      if (round >= 1) await fs.rm(path.join(src, 'moving', `big-${round - 1}.bin`));
      ok(await cairn(repo, ['backup', src]), `backup ${round}`);
    }
    ok(await cairn(repo, ['forget', '--keep-last', '1']), 'forget');
    const packsOf = async (): Promise<Map<string, string>> => {
      const m = new Map<string, string>();
      for (const p of ok(await restic(repo, ['list', 'packs']), 'list packs').out.trim().split('\n')) m.set(p, (await fs.readFile(path.join(repo.dir, 'data', p.slice(0, 2), p))).subarray(0, 64).toString('hex'));
      return m;
    };
    const dataPacks = async (): Promise<Set<string>> => {
      const out = new Set<string>();
      for (const id of ok(await restic(repo, ['list', 'index']), 'list index').out.trim().split('\n')) {
        const idx = JSON.parse(ok(await restic(repo, ['cat', 'index', id]), 'cat index').out) as { packs: { id: string; blobs: { type: string }[] }[] };
        for (const p of idx.packs) if (p.blobs.every((b) => b.type === 'data')) out.add(p.id);
      }
      return out;
    };
    const before = await packsOf();
    const dataBefore = await dataPacks();
    const plan = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--max-unused', '0', '--dry-run']), 'prune --dry-run').out) as { packsRepacked: number };
    const stats = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--max-unused', '0', '--repack-cacheable-only']), 'prune --repack-cacheable-only').out) as { packsRepacked: number; packsRemoved: number };
    expect(stats.packsRepacked).toBeGreaterThan(0);
    expect(stats.packsRepacked).toBeLessThan(plan.packsRepacked);
    const after = await packsOf();
    // Data packs that still hold used blobs are the same files; the ones removed held nothing used.
    const kept = [...dataBefore].filter((p) => after.has(p));
    expect(kept.length).toBeGreaterThan(0);
    for (const p of kept) expect(after.get(p)).toBe(before.get(p));
    expect([...after.keys()].filter((p) => !before.has(p)).every((p) => !dataBefore.has(p))).toBe(true);
    expect((await dataPacks()).size).toBe(kept.length);
    expect(ok(await restic(repo, ['prune', '--dry-run', '--max-unused', '0', '--repack-cacheable-only']), 'restic prune --repack-cacheable-only --dry-run').out).toMatch(/to repack:\s+0 blobs/);
    ok(await restic(repo, ['check', '--read-data']), 'restic check --read-data');
    await restoresExactly(repo, 'latest', src);
  });

  it('removes the packs of an interrupted backup and refuses when a snapshot cannot be read', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'f'), seededBytes(3, 600_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    // A pack no index mentions, as a crashed backup leaves it.
    const stray = path.join(repo.dir, 'data', 'ab', 'ab'.repeat(32));
    await fs.writeFile(stray, 'left by a crash');
    ok(await cairn(repo, ['prune']), 'prune');
    await expect(fs.access(stray)).rejects.toThrow();

    const [snap] = await fs.readdir(path.join(repo.dir, 'snapshots'));
    await fs.chmod(path.join(repo.dir, 'snapshots', snap), 0o600);
    await fs.writeFile(path.join(repo.dir, 'snapshots', snap), 'garbage');
    const r = await cairn(repo, ['prune']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/snapshot|does not match|verification/);
  });
});

describe('repair index', () => {
  it('rebuilds a lost index from the packs; check, restore and restic all work again', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    ok(await cairn(repo, ['init']), 'init');
    for (let i = 0; i < 3; i++) {
      await fs.writeFile(path.join(src, `f${i}`), seededBytes(70 + i, 900_000));
      ok(await cairn(repo, ['backup', src]), `backup ${i}`);
    }
    for (const f of await fs.readdir(path.join(repo.dir, 'index'))) await fs.rm(path.join(repo.dir, 'index', f), { force: true });
    expect((await cairn(repo, ['check'])).code).not.toBe(0);
    const r = JSON.parse(ok(await cairn(repo, ['--json', 'repair', 'index']), 'repair index').out) as { packs: number; indexFilesWritten: number; damaged: unknown[] };
    expect(r.packs).toBeGreaterThan(0);
    expect(r.damaged).toEqual([]);
    ok(await cairn(repo, ['check', '--read-data']), 'check after repair');
    if (HAVE_RESTIC) ok(await restic(repo, ['check', '--read-data']), 'restic check after repair');
    await restoresExactly(repo, 'latest', src);
  });

  it('leaves a pack with a damaged header out, names it, and supersedes the old index', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    ok(await cairn(repo, ['init']), 'init');
    await fs.writeFile(path.join(src, 'a'), seededBytes(91, 700_000));
    ok(await cairn(repo, ['backup', src]), 'backup a');
    const before = new Set(await fs.readdir(path.join(repo.dir, 'index')));
    const packs: string[] = [];
    for (const d of await fs.readdir(path.join(repo.dir, 'data'))) for (const f of await fs.readdir(path.join(repo.dir, 'data', d))) packs.push(path.join(repo.dir, 'data', d, f));
    const sized = await Promise.all(packs.map(async (p) => [(await fs.stat(p)).size, p] as const));
    const victim = sized.sort((x, y) => y[0] - x[0])[0][1];
    await fs.chmod(victim, 0o600);
    await fs.truncate(victim, (await fs.stat(victim)).size - 10);
    const r = await cairn(repo, ['repair', 'index']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(path.basename(victim));
    const after = await fs.readdir(path.join(repo.dir, 'index'));
    expect(after.some((f) => before.has(f))).toBe(false);
    const check = await cairn(repo, ['check']);
    expect(check.code).not.toBe(0);
    expect(check.stderr).toMatch(/not in the index/);
  });
});
