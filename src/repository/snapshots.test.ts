import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../backend/local.js';
import { Repository } from './repository.js';
import { PROGRAM_VERSION } from './snapshot.js';
import { findSnapshot } from './find.js';
import { tempDir } from '../../test/support/tools.js';

describe('snapshot order', () => {
  it('orders snapshots by instant, whatever the fraction length or zone of their times', async () => {
    const repo = await Repository.init(new LocalBackend(await tempDir()), 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
    const tree = '0'.repeat(64);
    // As text these sort 15.52Z, 15.5Z, 15Z, 04:20:14.1+01:00; as instants 15Z < 15.5Z < 15.52Z, and
    // 04:20:14.1+01:00 (03:20:14.1Z) is before all of them.
    const times = ['2026-11-30T03:20:15.52Z', '2026-11-30T03:20:15Z', '2026-11-30T04:20:14.1+01:00', '2026-11-30T03:20:15.5Z'];
    for (const time of times) {
      await repo.saveSnapshot({ time, tree, paths: ['/x'], hostname: 'h', username: 'u', program_version: PROGRAM_VERSION });
    }
    const order = (await repo.listSnapshots()).map((s) => s.time);
    expect(order).toEqual(['2026-11-30T04:20:14.1+01:00', '2026-11-30T03:20:15Z', '2026-11-30T03:20:15.5Z', '2026-11-30T03:20:15.52Z']);
    expect((await findSnapshot(repo, 'latest')).time).toBe('2026-11-30T03:20:15.52Z');
  });
});
