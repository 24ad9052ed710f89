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
/** Calls to read(2) and its kin this process has made, all threads together. */
const readCalls = () => Number(/^syscr: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))![1]);
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

  it('reads a small file with one call when it has the size the walk saw, and whole when it has grown or shrunk since', async () => {
    // The same 60 files, saved as of the size they have and then as of one byte less: only the
    // second time does a read that gives what the walk saw not settle that a file ends there.
    const files = small.slice(0, 60);
    const calls = async (delta: number): Promise<number> => {
      const before = readCalls();
      await Promise.all(files.map((p) => pool.saveSmallFile(p, fs.statSync(p).size + delta)));
      return readCalls() - before;
    };
    const asSeen = await calls(0);
    const changed = await calls(-1);
    expect(changed - asSeen).toBeGreaterThanOrEqual(50);
    expect(asSeen).toBeGreaterThanOrEqual(60);

    // Sizes as a walk saw them before the files changed: what is saved is what the files hold now.
    const grown = path.join(src, 'grown');
    const shrunk = path.join(src, 'shrunk');
    fs.writeFileSync(grown, randomBytes(5000));
    fs.writeFileSync(shrunk, randomBytes(100));
    const [g, sh] = await Promise.all([pool.saveSmallFile(grown, 100), pool.saveSmallFile(shrunk, 5000)]);
    await pool.flush();
    expect(g.size).toBe(5000);
    expect(sh.size).toBe(100);
    expect(Buffer.concat(await Promise.all(g.content.map((id) => repo.loadBlob('data', id)))).equals(fs.readFileSync(grown))).toBe(true);
    expect(Buffer.concat(await Promise.all(sh.content.map((id) => repo.loadBlob('data', id)))).equals(fs.readFileSync(shrunk))).toBe(true);
  });
});
