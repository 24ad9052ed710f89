import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { whyNoFolder } from './no-folder.js';

const made: string[] = [];
afterAll(() => {
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-nofolder-'));
  made.push(d);
  return d;
}
/** The error mkdir gives for `dir`, as the callers of whyNoFolder see it. */
function mkdirError(dir: string): unknown {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (err) {
    return err;
  }
  throw new Error(`mkdir ${dir} worked`);
}

describe('whyNoFolder', () => {
  it('names the file in the way, however deep below it the folder was to go', () => {
    const file = path.join(tempDir(), 'file');
    fs.writeFileSync(file, 'x');
    for (const dir of [path.join(file, 'a'), path.join(file, 'a', 'b', 'c')]) expect(whyNoFolder(dir, mkdirError(dir))).toBe(`${file} is not a folder`);
  });

  it('keeps the error when the folder above is writable and something else stopped it', () => {
    const dir = path.join(tempDir(), 'x'.repeat(300));
    const err = mkdirError(dir);
    expect((err as NodeJS.ErrnoException).code).toBe('ENAMETOOLONG');
    expect(whyNoFolder(dir, err)).toBe((err as Error).message);
    expect(whyNoFolder(Buffer.from(dir), err)).toBe((err as Error).message);
  });

  // A real read-only file system: a tmpfs mounted read-only (root only, as in CI).
  it.runIf(process.getuid?.() === 0)('says the file system is read-only where Node says ENOENT', () => {
    const mnt = tempDir();
    expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', mnt]).status).toBe(0);
    try {
      const dir = path.join(mnt, 'a', 'b');
      const err = mkdirError(dir);
      expect((err as NodeJS.ErrnoException).code).toBe('ENOENT');
      expect(whyNoFolder(dir, err)).toBe(`the file system of ${mnt} is read-only`);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});
