import { rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { checkWithTool, contentOf, decompressCopy, makeTargetTree, tarListing, TOOLS_PRESENT, unpackFolderCopy } from '../../test/support/archives.js';
import { describeTree, compareTrees } from '../../test/support/trees.js';
import { tempDir } from '../../test/support/tools.js';
import { CairnError } from '../errors.js';
import { runArchive } from './archive.js';
import type { Codec } from './spec.js';

const NOW = new Date('2026-11-24T08:00:00Z');
const STAMP = '2026-11-24T08-00-00Z';

let src: string;
let folder: string;
let file: string;
beforeAll(async () => {
  expect(TOOLS_PRESENT).toBe(true);
  src = await tempDir('cairn-archive-src-');
  folder = path.join(src, 'docs');
  await makeTargetTree(folder);
  await fs.symlink('a.txt', path.join(folder, 'link-to-a'));
  file = path.join(src, 'notes.txt');
  await fs.writeFile(file, 'some notes\n'.repeat(1000));
});

const NAMES: Record<Codec, [string, string]> = {
  gzip: [`notes.txt.${STAMP}.gz`, `docs.${STAMP}.tar.gz`],
  zlib: [`notes.txt.${STAMP}.zz`, `docs.${STAMP}.tar.zz`],
  brotli: [`notes.txt.${STAMP}.br`, `docs.${STAMP}.tar.br`],
  zstd: [`notes.txt.${STAMP}.zst`, `docs.${STAMP}.tar.zst`],
  zip: [`notes.txt.${STAMP}.zip`, `docs.${STAMP}.zip`],
};

describe.each(Object.keys(NAMES) as Codec[])('archive with %s to a folder', (codec) => {
  it('writes a checked copy of a file and of a folder, with every entry', async () => {
    const dest = await tempDir();
    const progress: number[] = [];
    const r = await runArchive({ kind: 'archive', dest, codec }, [{ path: file }, { path: folder }], { now: NOW, onProgress: (p) => progress.push(p.files) });
    expect(r.written).toEqual(NAMES[codec]);
    expect(r.removed).toEqual([]);
    expect(r.skipped).toEqual([]);
    expect(r.files).toBe(1 + 6);
    expect(r.bytes).toBe(11_000 + 6 + 200_000 + 1_500_000 + Buffer.byteLength('unicode ✓\n') + 'a name past 100 bytes\n'.length);
    expect(progress.at(-1)).toBe(7);
    expect((await fs.readdir(dest)).sort()).toEqual([...NAMES[codec]].sort());
    for (const name of NAMES[codec]) await checkWithTool(path.join(dest, name));

    const [fileCopy, folderCopy] = NAMES[codec].map((n) => path.join(dest, n));
    if (codec === 'zip') {
      const dir = await unpackFolderCopy(fileCopy);
      expect(await fs.readFile(path.join(dir, 'notes.txt'))).toEqual(await fs.readFile(file));
    } else {
      expect(decompressCopy(await fs.readFile(fileCopy), fileCopy)).toEqual(await fs.readFile(file));
    }
    const unpacked = await unpackFolderCopy(folderCopy, codec === 'zip' ? undefined : await tarListing(folder, 'docs'));
    expect(await contentOf(path.join(unpacked, 'docs'))).toEqual(await contentOf(folder));
    if (codec !== 'zip') {
      // tar keeps modes, owners and mtimes (to the second) too.
      expect(compareTrees(await describeTree(folder), await describeTree(path.join(unpacked, 'docs')), 1_000_000_000n)).toEqual([]);
    }
  });
});

describe('archive retention', () => {
  const day = 86_400_000;
  const at = (d: number) => new Date(NOW.getTime() + d * day);

  it('keeps the newest copies by count, and never touches other files', async () => {
    const dest = await tempDir();
    await fs.writeFile(path.join(dest, 'notes.txt.keep-me.gz'), 'x');
    await fs.writeFile(path.join(dest, 'other.2020-01-01T00-00-00Z.gz'), 'x');
    for (let d = 0; d < 4; d++) await runArchive({ kind: 'archive', dest, codec: 'gzip', keep: { count: 2 } }, [{ path: file }], { now: at(d) });
    const r = await runArchive({ kind: 'archive', dest, codec: 'gzip', keep: { count: 2 } }, [{ path: file }], { now: at(4) });
    expect(r.removed).toEqual(['notes.txt.2026-11-26T08-00-00Z.gz']);
    expect((await fs.readdir(dest)).sort()).toEqual([
      'notes.txt.2026-11-27T08-00-00Z.gz',
      'notes.txt.2026-11-28T08-00-00Z.gz',
      'notes.txt.keep-me.gz',
      'other.2020-01-01T00-00-00Z.gz',
    ]);
  });

  it('removes copies older than the age unless the count keeps them, across codecs', async () => {
    const dest = await tempDir();
    await runArchive({ kind: 'archive', dest, codec: 'zstd' }, [{ path: folder }], { now: at(-10) });
    await runArchive({ kind: 'archive', dest, codec: 'gzip' }, [{ path: folder }], { now: at(-3) });
    await runArchive({ kind: 'archive', dest, codec: 'gzip' }, [{ path: folder }], { now: at(-1) });
    const r = await runArchive({ kind: 'archive', dest, codec: 'zip', keep: { age: '2d' } }, [{ path: folder }], { now: NOW });
    expect(r.removed).toEqual(['docs.2026-11-14T08-00-00Z.tar.zst', 'docs.2026-11-21T08-00-00Z.tar.gz']);
    expect((await fs.readdir(dest)).sort()).toEqual(['docs.2026-11-23T08-00-00Z.tar.gz', `docs.${STAMP}.zip`]);
    const both = await runArchive({ kind: 'archive', dest, codec: 'zip', keep: { age: '1h', count: 2 } }, [{ path: folder }], { now: at(5) });
    expect(both.removed).toEqual(['docs.2026-11-23T08-00-00Z.tar.gz']);
  });

  it('never removes the copy just written, even with an age shorter than a run', async () => {
    const dest = await tempDir();
    const r = await runArchive({ kind: 'archive', dest, codec: 'gzip', keep: { age: '1h' } }, [{ path: file }], { now: at(-400) });
    expect(r.removed).toEqual([]);
    expect(await fs.readdir(dest)).toEqual(r.written);
  });
});

describe('archive sources', () => {
  it('applies excludes', async () => {
    const dest = await tempDir();
    const r = await runArchive({ kind: 'archive', dest, codec: 'gzip' }, [{ path: folder, excludes: ['*.bin', 'empty-dir'] }], { now: NOW });
    const unpacked = await unpackFolderCopy(path.join(dest, r.written[0]));
    const names = Object.keys(await contentOf(path.join(unpacked, 'docs')));
    expect(names).not.toContain('sub/deeper/c.bin');
    expect(names).not.toContain('empty-dir');
    expect(names).toContain('sub/deeper');
    expect(names).toContain('a.txt');
  });

  it('reports a file that disappears during the run and goes on', async () => {
    const tree = await tempDir();
    await makeTargetTree(tree);
    const dest = await tempDir();
    const victim = path.join(tree, 'unicode-äöü-日本語-😀.txt');
    const r = await runArchive({ kind: 'archive', dest, codec: 'zstd' }, [{ path: tree }], {
      now: NOW,
      onProgress: (p) => {
        // Progress may name a.txt more than once: the file goes at the first, and is gone after.
        if (p.current?.endsWith('/a.txt')) rmSync(victim, { force: true });
      },
    });
    expect(r.skipped).toEqual([{ path: victim, error: 'ENOENT' }]);
    const unpacked = await unpackFolderCopy(path.join(dest, r.written[0]));
    expect(Object.keys(await contentOf(path.join(unpacked, path.basename(tree))))).toContain('sub/deeper/c.bin');
  });

  it('fails clearly, leaving nothing, when a source folder disappears during the run', async () => {
    const tree = await tempDir();
    await makeTargetTree(tree);
    const dest = await tempDir();
    const err = await runArchive({ kind: 'archive', dest, codec: 'gzip' }, [{ path: tree }], {
      now: NOW,
      onProgress: () => rmSync(tree, { recursive: true, force: true }),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).code).toBe('NOT_FOUND');
    expect((err as CairnError).message).toContain(`source ${tree} disappeared during the run`);
    expect(await fs.readdir(dest)).toEqual([]);
  });

  it('refuses a missing source and two sources with one name', async () => {
    const dest = await tempDir();
    await expect(runArchive({ kind: 'archive', dest, codec: 'gzip' }, [{ path: path.join(src, 'nope') }], {})).rejects.toThrow(/source .*nope cannot be read \(ENOENT\)/);
    const other = path.join(await tempDir(), 'notes.txt');
    await fs.writeFile(other, 'x');
    await expect(runArchive({ kind: 'archive', dest, codec: 'gzip' }, [{ path: file }, { path: other }], {})).rejects.toThrow(/would both be archived as "notes.txt"/);
    await expect(runArchive({ kind: 'archive', dest, codec: 'lz4' as Codec }, [{ path: file }], {})).rejects.toThrow(/invalid archive target: codec/);
  });

  it('stops on abort without leaving a partial copy', async () => {
    const dest = await tempDir();
    const ac = new AbortController();
    const err = await runArchive({ kind: 'archive', dest, codec: 'gzip' }, [{ path: folder }], { now: NOW, signal: ac.signal, onProgress: () => ac.abort() }).catch((e: unknown) => e);
    expect((err as CairnError).code).toBe('INTERRUPTED');
    expect(await fs.readdir(dest)).toEqual([]);
  });
});
