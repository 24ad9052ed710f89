import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archiver } from './archiver.js';
import { LocalBackend } from '../backend/local.js';
import { Repository } from '../repository/repository.js';
import { WorkerPool } from '../repository/worker-pool.js';
import { makeRepoPaths, tempDir } from '../../test/support/tools.js';

/** Bytes this process has read with read(2) and its kin, from files, pipes or sockets, all threads together. */
const bytesRead = () => Number(/^rchar: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))![1]);
const MiB = 1024 * 1024;

/**
 * What a backup reads of the source, counted by the kernel: every file once when it is new,
 * nothing of an unchanged one, and of changed ones only those.
 */
describe('what a backup reads', () => {
  let repo: Repository;
  let pool: WorkerPool;
  let src: string;
  const small: string[] = [];
  let total = 0;

  beforeAll(async () => {
    const paths = await makeRepoPaths();
    const password = fs.readFileSync(paths.passwordFile, 'utf8').split('\n')[0];
    repo = await Repository.init(new LocalBackend(paths.dir), password, { kdf: { N: 1024, r: 8, p: 1 } });
    pool = new WorkerPool(repo);
    src = await tempDir();
    for (let d = 0; d < 4; d++) {
      fs.mkdirSync(path.join(src, `d${d}`));
      for (let f = 0; f < 60; f++) {
        const p = path.join(src, `d${d}`, `f${f}`);
        fs.writeFileSync(p, randomBytes(40 * 1024));
        small.push(p);
        total += 40 * 1024;
      }
    }
    fs.writeFileSync(path.join(src, 'large'), randomBytes(3 * MiB));
    total += 3 * MiB;
  });
  afterAll(async () => pool?.close());

  it('reads every file of a first backup, no file of an unchanged one, and only the changed files after that', async () => {
    let before = bytesRead();
    const first = await new Archiver(repo, pool, { paths: [src] }).run();
    const firstRead = bytesRead() - before;
    expect(firstRead).toBeGreaterThanOrEqual(total);
    expect(firstRead).toBeLessThan(total + MiB);

    before = bytesRead();
    const second = await new Archiver(repo, pool, { paths: [src], parent: first.snapshot }).run();
    expect(second.snapshot.summary?.files_unmodified).toBe(small.length + 1);
    expect(bytesRead() - before).toBeLessThan(MiB);

    for (const p of small.slice(0, 3)) fs.writeFileSync(p, randomBytes(41 * 1024));
    before = bytesRead();
    const third = await new Archiver(repo, pool, { paths: [src], parent: second.snapshot }).run();
    expect(third.snapshot.summary).toMatchObject({ files_changed: 3, files_unmodified: small.length - 2 });
    const thirdRead = bytesRead() - before;
    expect(thirdRead).toBeGreaterThanOrEqual(3 * 41 * 1024);
    expect(thirdRead).toBeLessThan(MiB);

    before = bytesRead();
    await new Archiver(repo, pool, { paths: [src], parent: third.snapshot, force: true }).run();
    expect(bytesRead() - before).toBeGreaterThanOrEqual(total);
  });
});
