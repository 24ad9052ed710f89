import { describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import { openRepository } from './backup-plan.js';
import { tempDir } from '../../test/support/tools.js';

process.env.CAIRN_KDF_N = '1024';

describe('the repository of a plan', () => {
  it('is created once when the first jobs of several plans find it missing at the same time', async () => {
    const dir = await tempDir();
    const passwordFile = path.join(dir, 'pw');
    await fs.writeFile(passwordFile, 'secret\n', { mode: 0o600 });
    const ref = { location: path.join(dir, 'repo'), passwordFile, initIfMissing: true };
    const repos = await Promise.all(Array.from({ length: 6 }, () => openRepository(ref)));
    expect(new Set(repos.map((r) => r.config.id)).size).toBe(1);
    expect(await fs.readdir(path.join(dir, 'repo', 'keys'))).toHaveLength(1);
    for (const r of repos) await r.close();
    await expect(openRepository({ ...ref, location: path.join(dir, 'other'), initIfMissing: false })).rejects.toThrow(/no repository/);
  });
});
