import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalBackend } from '../../src/backend/local.js';
import { formatTime } from '../../src/fs/time.js';
import { Repository } from '../../src/repository/repository.js';
import { encodeTree } from '../../src/repository/tree.js';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, type TestRepo } from '../support/tools.js';

interface Group {
  host: string;
  paths: string[] | null;
  tags: string[] | null;
  keep: { id: string }[] | null;
  remove: { id: string }[] | null;
}

function summary(groups: Group[]): string[] {
  return groups
    .map((g) => `${g.host}|${(g.paths ?? []).join(',')}|${(g.tags ?? []).join(',')} keep=${(g.keep ?? []).map((s) => s.id.slice(0, 8)).sort().join(',')} remove=${(g.remove ?? []).map((s) => s.id.slice(0, 8)).sort().join(',')}`)
    .sort();
}

describe.runIf(HAVE_RESTIC)('forget keeps exactly what restic forget keeps', () => {
  let repo: TestRepo;

  beforeAll(async () => {
    repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const password = (await fs.readFile(repo.passwordFile, 'utf8')).split('\n')[0];
    const r = await Repository.open(new LocalBackend(repo.dir), password);
    await r.loadIndex();
    const { id: tree } = await r.saveBlob('tree', encodeTree([]));
    await r.flush();
    // Snapshots every 7 hours over ~2.5 years, on two hosts and two path sets, some tagged, in
    // three time zones (buckets are computed in the zone each time was written in).
    const start = Date.UTC(2022, 0, 1, 3, 0, 0);
    const zones = [0, 120, -330];
    let n = 0;
    for (let t = start; t < start + 900 * 86_400_000; t += 7 * 3_600_000 + 13 * 60_000) {
      n++;
      const host = n % 5 === 0 ? 'other-host' : 'main-host';
      const paths = n % 7 === 0 ? ['/srv/db'] : ['/home', '/etc'];
      const tags = n % 11 === 0 ? ['important'] : n % 13 === 0 ? ['weekly', 'important'] : [];
      if (n % 3 !== 0) continue;
      await r.saveSnapshot({ time: formatTime(BigInt(t) * 1_000_000n + BigInt(n), zones[n % 3 === 0 ? (n / 3) % 3 : 0]), tree, paths, hostname: host, username: 'u', tags });
    }
    await r.close();
  });

  const policies: string[][] = [
    ['--keep-last', '3'],
    ['--keep-hourly', '5'],
    ['--keep-daily', '7'],
    ['--keep-weekly', '4'],
    ['--keep-monthly', '6'],
    ['--keep-yearly', '3'],
    ['--keep-daily', '3', '--keep-weekly', '2', '--keep-monthly', '2', '--keep-yearly', '1'],
    ['--keep-within', '2d'],
    ['--keep-within', '1m'],
    ['--keep-within', '1y2m3d4h'],
    ['--keep-within-daily', '7d'],
    ['--keep-within-weekly', '2m', '--keep-within-monthly', '1y'],
    ['--keep-tag', 'important'],
    ['--keep-tag', 'weekly,important', '--keep-last', '1'],
    ['--keep-last', '2', '--group-by', 'host'],
    ['--keep-monthly', '2', '--group-by', 'tags'],
    ['--keep-last', '1', '--group-by', 'host,paths,tags'],
    ['--keep-daily', '2', '--host', 'other-host'],
  ];

  for (const policy of policies) {
    it(`agrees on ${policy.join(' ')}`, async () => {
      const theirs = JSON.parse(ok(await restic(repo, ['forget', '--dry-run', '--json', ...policy]), 'restic forget').out) as Group[];
      const ours = JSON.parse(ok(await cairn(repo, ['forget', '--dry-run', '--json', ...policy]), 'cairn forget').out) as Group[];
      expect(summary(ours)).toEqual(summary(theirs));
    });
  }

  it('removes what the policy says, and restic agrees afterwards', async () => {
    const r2 = await makeRepoPaths();
    await fs.cp(repo.dir, r2.dir, { recursive: true });
    await fs.copyFile(repo.passwordFile, r2.passwordFile);
    const before = (await fs.readdir(path.join(r2.dir, 'snapshots'))).length;
    const res = ok(await cairn(r2, ['forget', '--keep-monthly', '4', '--keep-tag', 'important']), 'cairn forget');
    expect(res.out).toMatch(/removed \d+ snapshots/);
    const after = (await fs.readdir(path.join(r2.dir, 'snapshots'))).length;
    expect(after).toBeLessThan(before);
    const again = JSON.parse(ok(await restic(r2, ['forget', '--dry-run', '--json', '--keep-monthly', '4', '--keep-tag', 'important']), 'restic forget').out) as Group[];
    expect(again.every((g) => (g.remove ?? []).length === 0)).toBe(true);
    ok(await restic(r2, ['check']), 'restic check');
  });

  it('refuses an empty policy, a bad duration and a bad count', async () => {
    expect((await cairn(repo, ['forget'])).stderr).toMatch(/no policy was given/);
    expect((await cairn(repo, ['forget', '--keep-within', '3x'])).stderr).toMatch(/invalid duration "3x"/);
    expect((await cairn(repo, ['forget', '--keep-last', '-2'])).code).toBe(1);
  });
});
