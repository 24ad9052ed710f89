import fs, { type BigIntStats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EntryStat } from '../fs/node.js';
import { listDir, listedEntry } from './listing.js';
import { Scout } from './scout.js';

function tree(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-scout-'));
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'sub', 'inner'), 'x');
  fs.writeFileSync(path.join(dir, 'b.txt'), 'hello');
  fs.writeFileSync(path.join(dir, 'é'), '');
  fs.symlinkSync('b.txt', path.join(dir, 'link'));
  fs.writeFileSync(Buffer.concat([Buffer.from(`${dir}/`), Buffer.from([0x66, 0xff, 0x2e])]), 'raw');
  return dir;
}

describe('folder listings for the backup walk', () => {
  it('lists names in byte order, keeps names that are not UTF-8 as bytes, and carries each lstat exactly', async () => {
    const dir = tree();
    const scout = new Scout({ exclude: [], iexclude: [], oneFileSystem: false });
    try {
      const l = await scout.list(dir, 0n);
      const entries = l.names.map((_, i) => listedEntry(l, i));
      expect(entries.map((e) => e.nameRaw ?? Buffer.from(e.name))).toEqual(
        fs.readdirSync(dir, { encoding: 'buffer' }).sort(Buffer.compare),
      );
      const raw = entries.find((e) => e.nameRaw)!;
      expect(raw.nameRaw).toEqual(Buffer.from([0x66, 0xff, 0x2e]));
      for (const e of entries) {
        const full = e.nameRaw ? Buffer.concat([Buffer.from(`${dir}/`), e.nameRaw]) : path.join(dir, e.name);
        const want = fs.lstatSync(full, { bigint: true });
        const got = e.stat;
        if (got instanceof Error) throw got;
        // Reading ahead into the folder moved its access time after it was listed.
        const fields: (keyof EntryStat & keyof BigIntStats)[] = ['dev', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'ino', 'size', 'mtimeNs', 'ctimeNs'];
        if (e.name !== 'sub') fields.push('atimeNs');
        for (const k of fields) expect(got[k], `${e.name} ${k}`).toBe(want[k]);
        expect([got.isFile(), got.isDirectory(), got.isSymbolicLink()]).toEqual([want.isFile(), want.isDirectory(), want.isSymbolicLink()]);
      }
      const sub = await scout.list(path.join(dir, 'sub'), 0n);
      expect(sub.names).toEqual(['inner']);
      expect(sub).toEqual(listDir(path.join(dir, 'sub')));
    } finally {
      await scout.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails for a folder that cannot be read as readdir does, and lists on the calling thread once closed', async () => {
    const dir = tree();
    const scout = new Scout({ exclude: [], iexclude: [], oneFileSystem: false });
    try {
      const missing = path.join(dir, 'missing');
      const err = (await scout.list(missing, 0n).catch((e: unknown) => e)) as NodeJS.ErrnoException;
      expect(err.code).toBe('ENOENT');
      expect(err.message).toBe(`ENOENT: no such file or directory, scandir '${missing}'`);
      const notDir = (await scout.list(path.join(dir, 'b.txt'), 0n).catch((e: unknown) => e)) as NodeJS.ErrnoException;
      expect(notDir.code).toBe('ENOTDIR');
      const pending = scout.list(dir, 0n).catch((e: unknown) => e);
      await scout.close();
      expect(await pending).toBeInstanceOf(Error);
      expect((await scout.list(path.join(dir, 'sub'), 0n)).names).toEqual(['inner']);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
