import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeStaged, stagingPrefix, sweepStaging } from './staging.js';
import { tempDir } from '../../test/support/tools.js';

/** A pid that no process has: the largest pid Linux hands out is below 2^22. */
const DEAD_PID = 4_194_304 + 17;

describe('staged pack files', () => {
  it('sweeps the leftovers of dead processes on this host and old files of other hosts; keeps live ones and anything else', async () => {
    const dir = await tempDir();
    const host = os.hostname().replace(/[^A-Za-z0-9]/g, '_');
    const live = `${stagingPrefix()}0-0`;
    const dead = `.cairn-tmp-${host}-${DEAD_PID}-0a1b2c-1-4`;
    const otherRecent = '.cairn-tmp-elsewhere-123-0a1b2c-0-0';
    const otherOld = '.cairn-tmp-elsewhere-124-0a1b2c-0-0';
    const unrelated = ['.cairn-tmp-not-ours', 'ab', `.${'ab'.repeat(32)}-tmp-0123456789abcdef`];
    for (const n of [live, dead, otherRecent, otherOld, ...unrelated]) await fs.writeFile(path.join(dir, n), 'x');
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    await fs.utimes(path.join(dir, otherOld), twoDaysAgo, twoDaysAgo);
    expect(await sweepStaging(dir)).toBe(2);
    expect((await fs.readdir(dir)).sort()).toEqual([live, otherRecent, ...unrelated].sort());
    expect(await sweepStaging(path.join(dir, 'missing'))).toBe(0);
  });

  it('removes exactly the files of one prefix', async () => {
    const dir = await tempDir();
    const mine = stagingPrefix();
    const theirs = stagingPrefix();
    expect(mine).not.toBe(theirs);
    for (const n of [`${mine}0-0`, `${mine}1-3`, `${theirs}0-0`]) await fs.writeFile(path.join(dir, n), 'x');
    await removeStaged(dir, mine);
    expect(await fs.readdir(dir)).toEqual([`${theirs}0-0`]);
  });
});
