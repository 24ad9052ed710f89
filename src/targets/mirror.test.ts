import { appendFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { contentOf, makeTargetTree } from '../../test/support/archives.js';
import { tempDir } from '../../test/support/tools.js';
import { CairnError } from '../errors.js';
import { runMirror, type MirrorResult } from './mirror.js';
import { MANIFEST, TRASH } from './mirror-state.js';

/** The destination as a tree, without the mirror's own manifest and trash. */
async function mirrored(dest: string): Promise<Record<string, string>> {
  const all = await contentOf(dest);
  return Object.fromEntries(Object.entries(all).filter(([p]) => p !== MANIFEST && p !== TRASH && !p.startsWith(`${TRASH}/`)));
}

async function setup(): Promise<{ src: string; dest: string }> {
  const src = await tempDir('cairn-mirror-src-');
  await makeTargetTree(src);
  return { src, dest: path.join(await tempDir('cairn-mirror-dest-'), 'copy') };
}

function counts(r: MirrorResult): Pick<MirrorResult, 'uploaded' | 'deleted' | 'moved' | 'trashed'> {
  return { uploaded: r.uploaded, deleted: r.deleted, moved: r.moved, trashed: r.trashed };
}

describe('mirror to a folder', () => {
  it('copies the tree, then carries changes, renames, moves and deletes over', async () => {
    const { src, dest } = await setup();
    const cfg = { kind: 'mirror' as const, dest };
    const first = await runMirror(cfg, { path: src });
    expect(counts(first)).toEqual({ uploaded: 6, deleted: 0, moved: 0, trashed: 0 });
    expect(first.bytes).toBe(1_700_000 + 6 + Buffer.byteLength('unicode ✓\n') + 'a name past 100 bytes\n'.length);
    expect(await mirrored(dest)).toEqual(await contentOf(src));

    const again = await runMirror(cfg, { path: src });
    expect(counts(again)).toEqual({ uploaded: 0, deleted: 0, moved: 0, trashed: 0 });
    expect(again.bytes).toBe(0);
    expect(again.unchanged).toBe(6);

    // A new mtime alone costs a read, not an upload, and is recorded.
    await fs.utimes(path.join(src, 'sub/b.txt'), new Date('2030-01-01'), new Date('2030-01-01'));
    const touched = await runMirror(cfg, { path: src });
    expect({ ...counts(touched), unchanged: touched.unchanged }).toEqual({ uploaded: 0, deleted: 0, moved: 0, trashed: 0, unchanged: 6 });
    const manifest = JSON.parse(await fs.readFile(path.join(dest, MANIFEST), 'utf8')) as { files: Record<string, { mtimeMs: number }> };
    expect(manifest.files['sub/b.txt'].mtimeMs).toBe(new Date('2030-01-01').getTime());

    await fs.writeFile(path.join(src, 'a.txt'), 'alpha, changed\n');
    await fs.rename(path.join(src, 'sub/b.txt'), path.join(src, 'sub/b-renamed.txt'));
    await fs.mkdir(path.join(src, 'elsewhere'));
    await fs.rename(path.join(src, 'sub/deeper/c.bin'), path.join(src, 'elsewhere/c.bin'));
    await fs.rm(path.join(src, 'empty'));
    await fs.writeFile(path.join(src, 'new ファイル.txt'), 'new\n');
    await fs.mkdir(path.join(src, 'new-empty'));
    const changed = await runMirror(cfg, { path: src });
    expect(counts(changed)).toEqual({ uploaded: 2, deleted: 1, moved: 2, trashed: 0 });
    expect(changed.bytes).toBe('alpha, changed\n'.length + 4);
    expect(await mirrored(dest)).toEqual(await contentOf(src));
    // sub/deeper is now empty in the source, and stays as an empty folder.
    expect((await contentOf(src))['sub/deeper']).toBe('dir');
  });

  it('uploads only the changed paths it is given in watch mode', async () => {
    const { src, dest } = await setup();
    const cfg = { kind: 'mirror' as const, dest };
    await runMirror(cfg, { path: src });
    await fs.writeFile(path.join(src, 'a.txt'), 'seen\n');
    await fs.writeFile(path.join(src, 'sub/b.txt'), 'not announced\n');
    await fs.mkdir(path.join(src, 'fresh/inner'), { recursive: true });
    await fs.writeFile(path.join(src, 'fresh/inner/x.txt'), 'x\n');
    await fs.rm(path.join(src, 'sub/deeper'), { recursive: true });
    const r = await runMirror(cfg, { path: src }, { changedPaths: [path.join(src, 'a.txt'), 'fresh', path.join(src, 'sub/deeper')] });
    expect(counts(r)).toEqual({ uploaded: 2, deleted: 1, moved: 0, trashed: 0 });
    expect(await fs.readFile(path.join(dest, 'a.txt'), 'utf8')).toBe('seen\n');
    expect(await fs.readFile(path.join(dest, 'fresh/inner/x.txt'), 'utf8')).toBe('x\n');
    expect(await fs.readFile(path.join(dest, 'sub/b.txt'), 'utf8')).not.toBe('not announced\n');
    await expect(fs.stat(path.join(dest, 'sub/deeper'))).rejects.toThrow(/ENOENT/);
    // A full run then finds the change nobody announced.
    const full = await runMirror(cfg, { path: src });
    expect(counts(full)).toEqual({ uploaded: 1, deleted: 0, moved: 0, trashed: 0 });
    expect(await mirrored(dest)).toEqual(await contentOf(src));
  });

  it('moves replaced and deleted versions to a timestamped trash and expires it', async () => {
    const { src, dest } = await setup();
    const cfg = { kind: 'mirror' as const, dest, trash: { keep: { count: 2 } } };
    const day = 86_400_000;
    const t0 = new Date('2026-11-20T10:00:00Z');
    await runMirror(cfg, { path: src }, { now: t0 });
    for (let d = 1; d <= 3; d++) {
      await fs.writeFile(path.join(src, 'a.txt'), `version ${d}\n`);
      await runMirror(cfg, { path: src }, { now: new Date(t0.getTime() + d * day) });
    }
    await fs.rm(path.join(src, 'sub/b.txt'));
    const r = await runMirror(cfg, { path: src }, { now: new Date(t0.getTime() + 4 * day) });
    expect(counts(r)).toEqual({ uploaded: 0, deleted: 1, moved: 0, trashed: 1 });
    expect(r.trashRemoved).toEqual(['2026-11-22T10-00-00Z']);
    const trash = await contentOf(path.join(dest, TRASH));
    expect(Object.keys(trash).filter((p) => trash[p] !== 'dir').sort()).toEqual(['2026-11-23T10-00-00Z/a.txt', '2026-11-24T10-00-00Z/sub/b.txt']);
    expect(await fs.readFile(path.join(dest, TRASH, '2026-11-23T10-00-00Z/a.txt'), 'utf8')).toBe('version 2\n');
    expect(await mirrored(dest)).toEqual(await contentOf(src));

    const byAge = await runMirror({ ...cfg, trash: { keep: { age: '12h' } } }, { path: src }, { now: new Date(t0.getTime() + 4.25 * day) });
    expect(byAge.trashRemoved).toEqual(['2026-11-23T10-00-00Z']);
  });

  it('applies excludes and removes what becomes excluded', async () => {
    const { src, dest } = await setup();
    await runMirror({ kind: 'mirror', dest }, { path: src });
    const r = await runMirror({ kind: 'mirror', dest }, { path: src, excludes: ['*.bin', 'sub/b.txt'] });
    expect(counts(r)).toEqual({ uploaded: 0, deleted: 2, moved: 0, trashed: 0 });
    const tree = await mirrored(dest);
    expect(tree['sub/deeper/c.bin']).toBeUndefined();
    expect(tree['sub/b.txt']).toBeUndefined();
    expect(tree['sub/deeper']).toBe('dir');
  });

  it('puts back objects removed behind its back and removes strangers', async () => {
    const { src, dest } = await setup();
    await runMirror({ kind: 'mirror', dest }, { path: src });
    await fs.rm(path.join(dest, 'a.txt'));
    await fs.writeFile(path.join(dest, 'stranger.txt'), 'x');
    const r = await runMirror({ kind: 'mirror', dest }, { path: src });
    expect(counts(r)).toEqual({ uploaded: 1, deleted: 1, moved: 0, trashed: 0 });
    expect(await mirrored(dest)).toEqual(await contentOf(src));
  });

  it('reports symbolic links and refuses a destination inside the source', async () => {
    const { src, dest } = await setup();
    await fs.symlink('a.txt', path.join(src, 'link'));
    const r = await runMirror({ kind: 'mirror', dest }, { path: src });
    expect(r.skipped).toEqual([{ path: path.join(src, 'link'), error: 'symbolic link: not mirrored' }]);
    const err = await runMirror({ kind: 'mirror', dest: path.join(src, 'sub') }, { path: src }).catch((e: unknown) => e);
    expect((err as CairnError).code).toBe('BAD_INPUT');
    expect((err as CairnError).message).toMatch(/lies inside its source/);
    await expect(runMirror({ kind: 'mirror', dest }, { path: path.join(src, 'missing') })).rejects.toThrow(/mirror source .*missing cannot be read \(ENOENT\)/);
  });

  it('uploads a file again when it changes during its upload, and reports one that keeps changing', async () => {
    const { src, dest } = await setup();
    const grow = (file: string, times: number) => {
      let n = 0;
      return (p: { current?: string }) => {
        if (p.current === file && n < times) {
          n++;
          appendFileSync(path.join(src, file), 'more\n');
        }
      };
    };
    const once = await runMirror({ kind: 'mirror', dest }, { path: src }, { onProgress: grow('a.txt', 1) });
    expect(once.changed).toEqual([]);
    expect(await fs.readFile(path.join(dest, 'a.txt'), 'utf8')).toBe('alpha\nmore\n');
    await fs.appendFile(path.join(src, 'sub/b.txt'), 'x');
    const keeps = await runMirror({ kind: 'mirror', dest }, { path: src }, { onProgress: grow('sub/b.txt', 100) });
    expect(keeps.changed).toEqual([path.join(src, 'sub/b.txt')]);
    // Not recorded as done: the next run uploads it again, and then it is still.
    const next = await runMirror({ kind: 'mirror', dest }, { path: src });
    expect(counts(next)).toEqual({ uploaded: 1, deleted: 0, moved: 0, trashed: 0 });
    expect(await mirrored(dest)).toEqual(await contentOf(src));
  });

  it('stops on abort, and the next run finishes the job', async () => {
    const { src, dest } = await setup();
    const ac = new AbortController();
    const err = await runMirror({ kind: 'mirror', dest }, { path: src }, { signal: ac.signal, onProgress: () => ac.abort() }).catch((e: unknown) => e);
    expect((err as CairnError).code).toBe('INTERRUPTED');
    const tree = await contentOf(dest);
    expect(Object.keys(tree).filter((p) => p.includes('.cairn-tmp-'))).toEqual([]);
    const r = await runMirror({ kind: 'mirror', dest }, { path: src });
    expect(r.uploaded + r.unchanged).toBe(6);
    expect(await mirrored(dest)).toEqual(await contentOf(src));
  });
});
