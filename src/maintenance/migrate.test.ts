import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../backend/local.js';
import { Repository } from '../repository/repository.js';
import { tempDir } from '../../test/support/tools.js';
import { findMigration } from './migrate.js';

const KDF = { N: 1024, r: 8, p: 1 };
const ROOT = process.getuid?.() === 0;

describe('migrate upgrade_repo_v2', () => {
  it('turns a version 1 config into version 2 with the same id and polynomial, and no longer applies', async () => {
    const dir = path.join(await tempDir(), 'repo');
    const v1 = await Repository.init(new LocalBackend(dir), 'pw', { kdf: KDF, version: 1 });
    const m = findMigration('upgrade_repo_v2');
    expect(m.refusal(v1)).toBeNull();
    await m.apply(v1);
    const v2 = await Repository.open(new LocalBackend(dir), 'pw');
    expect(v2.config).toEqual({ ...v1.config, version: 2 });
    expect(v2.compression).toBe('auto');
    expect(m.refusal(v2)).toBe('repository is already upgraded to version 2');
    expect(() => findMigration('s3_layout')).toThrow(/unknown migration "s3_layout"; migrations: upgrade_repo_v2/);
  });

  // A real full disk: a small tmpfs (root only, as in CI).
  it.runIf(ROOT)('on a full disk: fails naming the cause, the old config stays in place, and a copy is kept until it succeeds', async () => {
    const disk = await tempDir();
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', disk]).status).toBe(0);
    try {
      const dir = path.join(disk, 'repo');
      const repo = await Repository.init(new LocalBackend(dir), 'pw', { kdf: KDF, version: 1 });
      const before = await fs.readFile(path.join(dir, 'config'));
      const filler = path.join(disk, 'filler');
      await fs.writeFile(filler, Buffer.alloc(512 * 1024)).catch(() => undefined);
      const m = findMigration('upgrade_repo_v2');
      const err = (await m.apply(repo).then(() => null, (e: unknown) => e)) as Error | null;
      expect(err?.message).toMatch(/^saving the new config failed \(no space left on device while writing the config file in .*; free some space and run the command again\); the old config is in place \(a copy is in .*cairn-migrate-upgrade-repo-v2-.*\/config\)$/);
      const copy = /a copy is in (.*)\)$/.exec(err!.message)![1];
      expect(await fs.readFile(copy)).toEqual(before);
      expect(await fs.readFile(path.join(dir, 'config'))).toEqual(before);
      expect((await Repository.open(new LocalBackend(dir), 'pw')).config.version).toBe(1);
      expect((await fs.readdir(dir)).filter((f) => f.startsWith('.'))).toEqual([]);

      await fs.rm(filler);
      await m.apply(repo);
      expect((await Repository.open(new LocalBackend(dir), 'pw')).config.version).toBe(2);
      await fs.rm(path.dirname(copy), { recursive: true });
    } finally {
      spawnSync('umount', [disk]);
    }
  });
});
