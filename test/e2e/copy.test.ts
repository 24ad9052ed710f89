import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, runCommand, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, seededBytes, textBytes } from '../support/trees.js';

async function restored(repo: TestRepo, id: string, src: string): Promise<Map<string, import('../support/trees.js').Entry>> {
  const target = await tempDir();
  ok(await restic(repo, ['restore', id, '--target', target]), `restic restore ${id}`);
  return describeTree(path.join(target, src));
}

const ids = async (repo: TestRepo) => (JSON.parse(ok(await restic(repo, ['snapshots', '--json']), 'snapshots').out) as { id: string; original?: string; paths: string[] }[]);

describe.runIf(HAVE_RESTIC)('copy', () => {
  it('copies restic snapshots into a Cairn repository and back, only what is missing, and not twice', async () => {
    const a = await makeRepoPaths('password of a');
    const b = await makeRepoPaths('another password for b');
    const srcA = await tempDir();
    for (let i = 0; i < 20; i++) await fs.writeFile(path.join(srcA, `f${i}`), i % 2 ? seededBytes(i, 200_000) : textBytes(i, 30_000));
    ok(await restic(a, ['init']), 'restic init');
    ok(await restic(a, ['backup', srcA]), 'restic backup 1');
    await fs.writeFile(path.join(srcA, 'later'), seededBytes(99, 1_500_000));
    ok(await restic(a, ['backup', srcA]), 'restic backup 2');
    const srcB = await tempDir();
    await fs.writeFile(path.join(srcB, 'own'), seededBytes(7, 300_000));
    await fs.writeFile(path.join(srcB, 'shared'), seededBytes(1, 200_000));
    ok(await cairn(b, ['init']), 'cairn init');
    ok(await cairn(b, ['backup', srcB]), 'cairn backup');

    const r = ok(await cairn(b, ['--json', 'copy', '--from-repo', a.dir, '--from-password-file', a.passwordFile]), 'cairn copy a → b');
    const summary = JSON.parse(r.out.trim().split('\n').pop()!) as { copied: { source: string; id: string }[]; skipped: string[]; blobs_copied: number };
    const fromA = await ids(a);
    expect(summary.copied.map((c) => c.source).sort()).toEqual(fromA.map((s) => s.id).sort());
    ok(await restic(b, ['check', '--read-data']), 'restic check b');
    for (const c of summary.copied) {
      const copy = (await ids(b)).find((s) => s.id === c.id)!;
      expect(copy.original).toBe(c.source);
      expect(compareTrees(await restored(a, c.source, srcA), await restored(b, c.id, srcA), 1000n)).toEqual([]);
    }
    // A second copy finds everything already there (the source's password from a command this time).
    const again = JSON.parse(ok(await cairn(b, ['--json', 'copy', '--from-repo', a.dir, '--from-password-command', `cat '${a.passwordFile}'`]), 'copy again').out.trim().split('\n').pop()!) as { copied: unknown[]; skipped: string[]; blobs_copied: number };
    expect(again).toMatchObject({ copied: [], blobs_copied: 0 });
    expect(again.skipped).toHaveLength(2);

    // The other way: Cairn copies its own snapshot into restic's repository, by id.
    const own = (await ids(b)).find((s) => !s.original)!;
    ok(await cairn(a, ['copy', own.id.slice(0, 8), '--from-repo', b.dir, '--from-password-file', b.passwordFile]), 'cairn copy b → a');
    ok(await restic(a, ['check', '--read-data']), 'restic check a');
    const intoA = (await ids(a)).find((s) => s.original === own.id)!;
    expect(compareTrees(await restored(b, own.id, srcB), await restored(a, intoA.id, srcB), 1000n)).toEqual([]);
    // restic's own copy sees that nothing is missing either way.
    const env = { ...process.env, ...a.env, RESTIC_FROM_REPOSITORY: b.dir, RESTIC_FROM_PASSWORD_FILE: b.passwordFile };
    const rc = await runCommand('restic', ['copy'], { env });
    expect(rc.code).toBe(0);
    expect((await ids(a)).length).toBe(3);

    const bad = await cairn(b, ['copy', '--from-repo', a.dir, '--from-password-file', b.passwordFile]);
    expect(bad.code).toBe(12);
    const none = await cairn(b, ['copy']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no source repository: use --from-repo/);
  });

  it('init --copy-chunker-params takes the chunker polynomial of another repository, so copies and new backups share chunks', async () => {
    const a = await makeRepoPaths('password of a');
    const b = await makeRepoPaths('password of b');
    const c = await makeRepoPaths('password of c');
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'big'), seededBytes(41, 6_000_000));
    ok(await cairn(a, ['init']), 'init a');
    ok(await cairn(a, ['backup', src]), 'backup a');
    const both = await cairn(b, ['init', '--copy-chunker-params', '--from-repo', a.dir, '--from-password-file', a.passwordFile, '--from-password-command', 'true']);
    expect(both.code).toBe(1);
    expect(both.stderr).toContain('a password file and a password command for the source repository cannot both be given');
    const missing = await cairn(b, ['init', '--copy-chunker-params']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('--copy-chunker-params needs the repository to copy them from');
    ok(await cairn(b, ['init', '--copy-chunker-params', '--from-repo', a.dir, '--from-password-file', a.passwordFile]), 'init b');
    ok(await cairn(c, ['init']), 'init c, with its own polynomial');
    const config = async (r: TestRepo) => JSON.parse(ok(await restic(r, ['cat', 'config']), 'config').out) as { id: string; chunker_polynomial: string };
    const [ca, cb, cc] = [await config(a), await config(b), await config(c)];
    expect(cb.chunker_polynomial).toBe(ca.chunker_polynomial);
    expect(cb.id).not.toBe(ca.id);
    expect(cc.chunker_polynomial).not.toBe(ca.chunker_polynomial);
    // Copied, then backed up again: with the same polynomial the same chunks (nothing new), with
    // another one new chunks for the whole file.
    for (const [r, added] of [[b, 0], [c, 6_000_000]] as const) {
      ok(await cairn(r, ['copy', '--from-repo', a.dir, '--from-password-file', a.passwordFile]), 'copy');
      const again = JSON.parse(ok(await cairn(r, ['--json', 'backup', '--force', src]), 'backup').out.trim().split('\n').pop()!) as { data_added: number };
      expect(again.data_added).toBe(added);
      ok(await restic(r, ['check', '--read-data']), 'restic check');
    }
  });
});
