import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/tools.js';
import { Prefetcher } from './prefetch.js';

const OLD = new Date('2000-01-01T00:00:00Z');
const SIZE = 40 * 1024;

/** Files whose access time is far in the past and before their modification time, so that a read moves it (relatime). */
async function files(n: number): Promise<string[]> {
  const dir = await tempDir('cairn-prefetch-');
  const paths = Array.from({ length: n }, (_, i) => path.join(dir, `f${String(i).padStart(2, '0')}`));
  for (const p of paths) {
    fs.writeFileSync(p, Buffer.alloc(SIZE, p));
    fs.utimesSync(p, OLD, new Date());
  }
  return paths;
}

const wasRead = (p: string) => fs.statSync(p).atimeMs > OLD.getTime();
const readBytes = () => Number(/^rchar: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))![1]);

describe('reading small files ahead of the workers', () => {
  it('reads offered files in order, no more than the window ahead of what the walk took, and skips what it took first', async () => {
    const paths = await files(12);
    fs.readFileSync(paths[11]);
    expect(wasRead(paths[11]), 'reading a file must move its access time here (the file system is mounted noatime?)').toBe(true);
    fs.utimesSync(paths[11], OLD, new Date());

    const p = new Prefetcher({ noatime: false, window: 2.5 * SIZE });
    for (const f of paths) p.offer(f, SIZE);
    await p.whenIdle();
    expect(paths.map(wasRead)).toEqual(paths.map((_, i) => i < 2));

    // f03 is taken before its turn (the walk got there first): it is never read here.
    p.taken(paths[3]);
    p.taken(paths[0]);
    await p.whenIdle();
    expect(paths.map(wasRead)).toEqual(paths.map((_, i) => i < 3));
    p.taken(paths[1]);
    await p.whenIdle();
    expect(paths.map(wasRead)).toEqual(paths.map((_, i) => i < 3 || i === 4));

    p.close();
    for (const f of paths) p.taken(f);
    await p.whenIdle();
    expect(paths.map(wasRead)).toEqual(paths.map((_, i) => i < 3 || i === 4));
  });

  it('leaves out empty and large files, offered twice reads once, and lets files that cannot be read be', async () => {
    const [small] = await files(1);
    const dir = path.dirname(small);
    const big = path.join(dir, 'big');
    fs.writeFileSync(big, Buffer.alloc(65 * 1024));
    fs.utimesSync(big, OLD, new Date());
    const p = new Prefetcher({ noatime: false });
    p.offer(big, 65 * 1024);
    p.offer(path.join(dir, 'missing'), 10);
    p.offer(dir, 10);
    p.offer(small, SIZE);
    p.offer(small, SIZE);
    await p.whenIdle();
    expect(wasRead(small)).toBe(true);
    expect(wasRead(big)).toBe(false);
    p.close();
  });

  it('holds no more than so many offered files: later ones are left to the workers', async () => {
    const paths = await files(6);
    const p = new Prefetcher({ noatime: false, maxOffered: 4 });
    for (const f of paths) p.offer(f, SIZE);
    await p.whenIdle();
    expect(paths.map(wasRead)).toEqual([true, true, true, true, false, false]);
    p.close();
  });

  it('reads without moving access times when asked to (O_NOATIME, as the workers read as root)', async () => {
    const paths = await files(4);
    const before = readBytes();
    const p = new Prefetcher({ noatime: true });
    for (const f of paths) p.offer(f, SIZE);
    await p.whenIdle();
    expect(readBytes() - before).toBeGreaterThanOrEqual(4 * SIZE);
    expect(paths.map(wasRead)).toEqual([false, false, false, false]);
    p.close();
  });
});
