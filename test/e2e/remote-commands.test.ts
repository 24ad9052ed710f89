/**
 * Every repository command on s3: and rest: locations, and a repository restic checks afterwards.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_RCLONE } from '../support/rest-server.js';
import { quietOk, startRemotes, type Remotes } from '../support/remotes.js';
import { HAVE_RESTIC, ok, cairn, restic, tempDir } from '../support/tools.js';
import { textBytes } from '../support/trees.js';

describe.runIf(HAVE_RESTIC && HAVE_RCLONE)('commands on remote repositories', () => {
  let remotes: Remotes;
  let src: string;

  beforeAll(async () => {
    remotes = await startRemotes();
    src = path.join(await tempDir(), 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'plain.txt'), 'hello world\n');
    await fs.writeFile(path.join(src, 'text-2m.txt'), textBytes(5, 2 * 1024 * 1024));
  });
  afterAll(async () => remotes?.stop());

  for (const kind of ['s3', 'rest'] as const) {
    it(`runs every repository command on ${kind}:, and leaves a repository restic checks`, async () => {
      const repo = await remotes.repo(kind === 's3' ? `s3:${remotes.s3.endpoint}/cairn/every-command` : `rest:${remotes.rest.url}every-command/`);
      const run = async (...args: string[]) => quietOk(await cairn(repo, args), `cairn ${args.join(' ')}`).out;
      await run('init');
      await run('backup', path.join(src, 'plain.txt'));
      await run('backup', path.join(src, 'plain.txt'), path.join(src, 'text-2m.txt'));
      // A dry run writes nothing: neither the repository nor the local cache changes.
      const repoFiles = async (): Promise<string[]> => {
        const out: string[] = [];
        for (const t of ['packs', 'index', 'snapshots', 'keys', 'locks']) out.push(...(await run('list', t)).trim().split('\n').map((id) => `${t} ${id}`));
        return out.sort();
      };
      const cacheFiles = async (): Promise<string[]> => (await fs.readdir(repo.env.CAIRN_CACHE_DIR!, { recursive: true })).sort();
      const [filesBefore, cacheBefore] = [await repoFiles(), await cacheFiles()];
      await fs.writeFile(path.join(src, `dry-${kind}.txt`), textBytes(9, 300_000));
      expect(await run('backup', '--dry-run', src)).toMatch(/Would add to the repository: /);
      await fs.rm(path.join(src, `dry-${kind}.txt`));
      expect(await repoFiles()).toEqual(filesBefore);
      expect(await cacheFiles()).toEqual(cacheBefore);
      const snaps = JSON.parse(await run('snapshots', '--json')) as { id: string }[];
      expect(snaps).toHaveLength(2);
      expect(await run('ls', 'latest')).toContain(path.join(src, 'text-2m.txt'));
      expect(await run('diff', snaps[0].id, snaps[1].id)).toContain(`+    ${path.join(src, 'text-2m.txt')}`);
      expect(JSON.parse(await run('stats', '--json', 'latest'))).toMatchObject({ total_size: 2 * 1024 * 1024 + 'hello world\n'.length });
      expect(await run('dump', 'latest', path.join(src, 'plain.txt'))).toBe('hello world\n');
      expect(JSON.parse(await run('cat', 'config'))).toMatchObject({ version: 2 });
      expect(await run('key', 'list')).toMatch(/^\*[0-9a-f]{8} /m);
      await run('forget', '--keep-last', '1', '--group-by', 'host', '--prune');
      await run('repair', 'index');
      await run('unlock');
      expect(await run('check', '--read-data')).toContain('no errors were found');
      const target = await tempDir();
      await run('restore', 'latest', '--target', target);
      expect(await fs.readFile(path.join(target, src, 'text-2m.txt'))).toEqual(await fs.readFile(path.join(src, 'text-2m.txt')));

      let resticRepo = repo;
      if (kind === 's3') {
        const local = path.join(await tempDir(), 'copy');
        ok(await remotes.s3.rclone(['copy', '--fast-list', 's3rver:cairn/every-command', local]), 'rclone copy');
        resticRepo = { ...repo, env: { ...repo.env, RESTIC_REPOSITORY: local } };
      }
      expect(ok(await restic(resticRepo, ['check', '--read-data']), 'restic check').out).toContain('no errors were found');
      expect(JSON.parse(ok(await restic(resticRepo, ['snapshots', '--json']), 'restic snapshots').out)).toHaveLength(1);
    });
  }
});
