import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, resticSnapshots, tempDir, type ListedSnapshot, type TestRepo } from '../support/tools.js';

/** The snapshots as restic lists them, without their ids (new files get new ids), in time order. */
async function listing(repo: TestRepo): Promise<Omit<ListedSnapshot, 'id' | 'summary'>[]> {
  return (await resticSnapshots(repo)).map(({ time, tree, paths, hostname, tags, original }) => ({ time, tree, paths, hostname, tags, original }));
}

describe.runIf(HAVE_RESTIC)('tag', () => {
  it('adds, removes and sets tags as restic tag does, keeping the first id in original', async () => {
    const ours = await makeRepoPaths();
    const src = await tempDir();
    ok(await cairn(ours, ['init']), 'init');
    const ids: string[] = [];
    for (const [i, flags] of [[], ['--tag', 'daily'], ['--host', 'other', '--tag', 'daily,keep']].entries()) {
      await fs.writeFile(path.join(src, 'f'), `version ${i}`);
      ids.push(JSON.parse(ok(await cairn(ours, ['--json', 'backup', src, ...flags]), 'backup').out.trim().split('\n').pop()!).snapshot_id as string);
    }
    // The same repository for restic, copied byte for byte.
    const theirs = await makeRepoPaths();
    await fs.cp(ours.dir, theirs.dir, { recursive: true });

    const steps: string[][] = [['--add', 'x,y', '--add', 'z', ids[0].slice(0, 8)], ['--remove', 'y,daily'], ['--set', 'only', '--host', 'other'], ['--add', 'again', '--tag', 'only']];
    for (const step of steps) {
      const c = ok(await cairn(ours, ['tag', ...step]), `cairn tag ${step.join(' ')}`);
      ok(await restic(theirs, ['tag', ...step]), `restic tag ${step.join(' ')}`);
      expect(await listing(ours), step.join(' ')).toEqual(await listing(theirs));
      expect(c.out).toMatch(/modified tags on \d+ snapshots|no snapshots were modified/);
    }
    // `--set ""` clears the tags (restic 0.14 takes it as no change at all).
    ok(await cairn(ours, ['tag', '--set', '']), 'clear');
    const final = await listing(ours);
    // Every snapshot was rewritten at least once, and each names the snapshot it started as.
    expect(final.map((s) => s.original).sort()).toEqual([...ids].sort());
    expect(final.every((s) => s.tags === undefined)).toBe(true);
    ok(await restic(ours, ['check']), 'restic check');

    const both = await cairn(ours, ['tag', '--set', 'a', '--add', 'b']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('--set and --add/--remove cannot be given at the same time');
    const nothing = await cairn(ours, ['tag', 'latest']);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain('nothing to do');
    const unknown = await cairn(ours, ['tag', '--add', 'a', 'deadbeef']);
    expect(unknown.code).toBe(1);
    expect((await listing(ours)).length).toBe(3);
    const quiet = ok(await cairn(ours, ['tag', '--remove', 'never-there']), 'no change').out;
    expect(quiet).toContain('no snapshots were modified');
  });
});
