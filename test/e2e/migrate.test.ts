/**
 * restic's way from a version 1 repository to a compressed one, done with Cairn: `migrate
 * upgrade_repo_v2`, then `prune` (tree packs) and `prune --repack-uncompressed` (data), each
 * checked against the restic binary.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, seededBytes, textBytes } from '../support/trees.js';

async function dataBytes(repo: TestRepo): Promise<number> {
  let n = 0;
  for (const e of await fs.readdir(path.join(repo.dir, 'data'), { recursive: true, withFileTypes: true })) {
    if (e.isFile()) n += (await fs.stat(path.join(e.parentPath, e.name))).size;
  }
  return n;
}

interface IndexBlob {
  type: 'data' | 'tree';
  uncompressed_length?: number;
}

/** Every blob the index lists, as restic reads the index files. */
async function indexedBlobs(repo: TestRepo): Promise<IndexBlob[]> {
  const out: IndexBlob[] = [];
  for (const id of ok(await restic(repo, ['list', 'index']), 'restic list index').out.trim().split('\n')) {
    const idx = JSON.parse(ok(await restic(repo, ['cat', 'index', id]), `restic cat index ${id}`).out) as { packs: { blobs: IndexBlob[] }[] };
    for (const p of idx.packs) out.push(...p.blobs);
  }
  return out;
}

interface RawStats {
  total_size: number;
  total_uncompressed_size: number;
  compression_progress?: number;
  compression_ratio?: number;
  compression_space_saving?: number;
}

async function rawStats(repo: TestRepo): Promise<RawStats> {
  return JSON.parse(ok(await cairn(repo, ['--json', 'stats', '--mode', 'raw-data']), 'stats --mode raw-data').out) as RawStats;
}

async function configVersion(repo: TestRepo): Promise<number> {
  return (JSON.parse(ok(await restic(repo, ['cat', 'config']), 'restic cat config').out) as { version: number }).version;
}

/** A folder with compressible text, incompressible data and an empty folder. */
async function makeSource(): Promise<string> {
  const src = await tempDir();
  await fs.mkdir(path.join(src, 'empty'));
  await fs.mkdir(path.join(src, 'docs'));
  for (let i = 0; i < 6; i++) await fs.writeFile(path.join(src, 'docs', `t${i}.txt`), textBytes(i + 1, 150_000));
  await fs.writeFile(path.join(src, 'random.bin'), seededBytes(77, 1_500_000));
  return src;
}

describe.runIf(HAVE_RESTIC)('migrate upgrade_repo_v2 and prune --repack-uncompressed', () => {
  it('upgrade a restic version 1 repository; prune compresses its trees, --repack-uncompressed its data, and restic agrees at every step', async () => {
    const repo = await makeRepoPaths();
    const src = await makeSource();
    ok(await restic(repo, ['init', '--repository-version', '1']), 'restic init v1');
    ok(await restic(repo, ['backup', src]), 'restic backup');
    const want = await describeTree(src);

    const plain = await rawStats(repo);
    expect(plain.compression_progress).toBeUndefined();
    expect(plain.total_uncompressed_size).toBeLessThan(plain.total_size);
    const early = await cairn(repo, ['prune', '--repack-uncompressed']);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/compression requires repository format version 2 \(run "cairn migrate upgrade_repo_v2" first\)/);
    const unknown = await cairn(repo, ['migrate', 'upgrade_repo_v3']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown migration "upgrade_repo_v3"; migrations: upgrade_repo_v2/);

    expect(ok(await cairn(repo, ['migrate']), 'migrate (list)').out).toBe('available migrations:\n  upgrade_repo_v2: upgrade a repository to version 2\n');
    expect(JSON.parse(ok(await cairn(repo, ['--json', 'migrate']), 'migrate --json').out)).toEqual([{ name: 'upgrade_repo_v2', description: 'upgrade a repository to version 2' }]);
    const applied = ok(await cairn(repo, ['migrate', 'upgrade_repo_v2']), 'migrate upgrade_repo_v2').out;
    expect(applied).toMatch(/checking repository integrity\.\.\.\napplying migration upgrade_repo_v2\.\.\.\nmigration upgrade_repo_v2: success/);
    expect(await configVersion(repo)).toBe(2);
    // The config keeps its id and polynomial, and stays read-only like every repository file.
    expect((await fs.stat(path.join(repo.dir, 'config'))).mode & 0o222).toBe(0);
    expect(ok(await cairn(repo, ['migrate']), 'migrate (list again)').out).toBe('available migrations:\n');
    const twice = ok(await cairn(repo, ['migrate', 'upgrade_repo_v2']), 'migrate a second time');
    expect(twice.stderr).toMatch(/migration upgrade_repo_v2 cannot be applied: repository is already upgraded to version 2/);
    ok(await restic(repo, ['check', '--read-data']), 'restic check after the upgrade');
    expect((await indexedBlobs(repo)).every((b) => b.uncompressed_length === undefined)).toBe(true);

    // restic's prune repacks every uncompressed tree pack of a version 2 repository; so does Cairn's.
    expect(ok(await restic(repo, ['prune', '--dry-run']), 'restic prune --dry-run').out).not.toMatch(/to repack:\s+0 blobs/);
    const pruned = JSON.parse(ok(await cairn(repo, ['--json', 'prune']), 'prune').out) as { packsRepacked: number };
    expect(pruned.packsRepacked).toBeGreaterThan(0);
    const afterPrune = await indexedBlobs(repo);
    expect(afterPrune.filter((b) => b.type === 'tree').every((b) => b.uncompressed_length !== undefined)).toBe(true);
    expect(afterPrune.filter((b) => b.type === 'data').every((b) => b.uncompressed_length === undefined)).toBe(true);
    expect(ok(await restic(repo, ['prune', '--dry-run']), 'restic prune --dry-run after prune').out).toMatch(/to repack:\s+0 blobs/);
    const halfway = await rawStats(repo);
    expect(halfway.total_uncompressed_size).toBe(plain.total_uncompressed_size);
    expect(halfway.compression_progress).toBeGreaterThan(0);
    expect(halfway.compression_progress).toBeLessThan(100);

    const off = await cairn(repo, ['--compression', 'off', 'prune', '--repack-uncompressed']);
    expect(off.code).toBe(1);
    expect(off.stderr).toMatch(/--repack-uncompressed and --compression off cannot be used together/);
    const before = await dataBytes(repo);
    // Every data pack still holds uncompressed data (all but the small tree packs): prune says how much.
    const waiting = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--dry-run']), 'prune --dry-run').out) as { notCompressed: number };
    expect(waiting.notCompressed).toBeLessThan(before);
    expect(waiting.notCompressed).toBeGreaterThan(before - 50_000);
    expect(ok(await cairn(repo, ['prune', '--dry-run']), 'prune --dry-run').out).toMatch(/\nnot yet compressed: .* \(prune --repack-uncompressed compresses it\)\n$/);
    const dry = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--repack-uncompressed', '--dry-run']), 'prune --repack-uncompressed --dry-run').out) as { packsRepacked: number; notCompressed: number };
    expect(dry.packsRepacked).toBeGreaterThan(0);
    expect(dry.notCompressed).toBe(0);
    expect(await dataBytes(repo)).toBe(before);
    ok(await cairn(repo, ['prune', '--repack-uncompressed']), 'prune --repack-uncompressed');
    // The text compresses; the random data is stored compressed too (zstd's raw blocks), so nothing is picked again.
    expect(await dataBytes(repo)).toBeLessThan(before - 500_000);
    expect((await indexedBlobs(repo)).every((b) => b.uncompressed_length !== undefined)).toBe(true);
    expect(ok(await restic(repo, ['prune', '--dry-run', '--repack-uncompressed']), 'restic prune --repack-uncompressed --dry-run').out).toMatch(/to repack:\s+0 blobs/);
    const again = JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--repack-uncompressed']), 'prune --repack-uncompressed again').out) as { packsRepacked: number };
    expect(again.packsRepacked).toBe(0);
    expect(again).toMatchObject({ notCompressed: 0 });
    const done = await rawStats(repo);
    expect(done.total_uncompressed_size).toBe(plain.total_uncompressed_size);
    expect(done.compression_progress).toBe(100);
    expect(done.compression_ratio).toBeGreaterThan(1.2);
    expect(done.compression_space_saving).toBeCloseTo((1 - done.total_size / done.total_uncompressed_size) * 100, 6);
    expect(ok(await cairn(repo, ['stats', '--mode', 'raw-data']), 'stats').out).toMatch(/ Total Uncompressed Size: .*\n {14}Total Size: .*\n {4}Compression Progress: {2}100\.00%\n {7}Compression Ratio: {2}\d+\.\d\dx\nCompression Space Saving: {2}\d+\.\d\d%\n$/);

    ok(await restic(repo, ['check', '--read-data']), 'restic check --read-data at the end');
    const target = await tempDir();
    ok(await restic(repo, ['restore', 'latest', '--target', target]), 'restic restore');
    expect(compareTrees(want, await describeTree(path.join(target, src)), 1000n)).toEqual([]);
    // New backups into the upgraded repository are compressed.
    await fs.writeFile(path.join(src, 'docs', 'new.txt'), textBytes(99, 200_000));
    ok(await cairn(repo, ['backup', src]), 'cairn backup after the upgrade');
    expect((await indexedBlobs(repo)).every((b) => b.uncompressed_length !== undefined)).toBe(true);
  });

  it("init takes restic's version names: stable and latest are 2; anything else is refused", async () => {
    for (const [name, version] of [['stable', 2], ['latest', 2], ['1', 1]] as const) {
      const repo = await makeRepoPaths();
      ok(await cairn(repo, ['init', '--repository-version', name]), `init --repository-version ${name}`);
      expect(await configVersion(repo)).toBe(version);
    }
    const bad = await cairn(await makeRepoPaths(), ['init', '--repository-version', '3']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/invalid --repository-version "3": use 1, 2, stable or latest/);
  });

  it('refuses to upgrade a damaged repository and leaves its config as it was', async () => {
    const repo = await makeRepoPaths();
    const src = await makeSource();
    ok(await restic(repo, ['init', '--repository-version', '1']), 'restic init v1');
    ok(await restic(repo, ['backup', src]), 'restic backup');
    const config = await fs.readFile(path.join(repo.dir, 'config'));
    const packs = ok(await restic(repo, ['list', 'packs']), 'restic list packs').out.trim().split('\n');
    await fs.rm(path.join(repo.dir, 'data', packs[0].slice(0, 2), packs[0]));
    const r = await cairn(repo, ['migrate', 'upgrade_repo_v2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/the repository has errors \(\d+\): migration upgrade_repo_v2 not applied; repair them first/);
    expect(await fs.readFile(path.join(repo.dir, 'config'))).toEqual(config);
    expect(await configVersion(repo)).toBe(1);
  });

  it("a Cairn backup stores every tree compressed, so restic's prune finds nothing to repack", async () => {
    const repo = await makeRepoPaths();
    const src = await makeSource();
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['--compression', 'off', 'backup', src]), 'backup with compression off');
    const blobs = await indexedBlobs(repo);
    expect(blobs.filter((b) => b.type === 'tree').every((b) => b.uncompressed_length !== undefined)).toBe(true);
    expect(blobs.filter((b) => b.type === 'data').every((b) => b.uncompressed_length === undefined)).toBe(true);
    expect(ok(await restic(repo, ['prune', '--dry-run']), 'restic prune --dry-run').out).toMatch(/to repack:\s+0 blobs/);
    expect(JSON.parse(ok(await cairn(repo, ['--json', 'prune', '--dry-run']), 'prune --dry-run').out)).toMatchObject({ packsRepacked: 0 });
  });
});
