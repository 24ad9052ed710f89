/**
 * Helpers for archive and mirror target tests: a small tree with the cases that matter to them, and checks of
 * written archives with the real command-line tools (gzip, zstd, unzip, tar).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import { expect } from 'vitest';
import { describeTree, seededBytes, textBytes } from './trees.js';
import { haveTool, ok, runCommand, tempDir } from './tools.js';

/** In CI a missing tool fails here; elsewhere the tests that need it would fail with the same hint. */
export const TOOLS_PRESENT = ['gzip', 'zstd', 'unzip', 'tar'].every((t) => haveTool(t, `apt-get install -y ${t}`));

/** Files and folders that archive and mirror targets must carry: nesting, unicode, a long path, empty ones, a symlink. */
export async function makeTargetTree(root: string): Promise<void> {
  await fs.mkdir(path.join(root, 'sub/deeper'), { recursive: true });
  await fs.mkdir(path.join(root, 'empty-dir'));
  await fs.writeFile(path.join(root, 'a.txt'), 'alpha\n');
  await fs.writeFile(path.join(root, 'empty'), '');
  await fs.writeFile(path.join(root, 'sub/b.txt'), textBytes(3, 200_000));
  await fs.writeFile(path.join(root, 'sub/deeper/c.bin'), seededBytes(4, 1_500_000));
  await fs.writeFile(path.join(root, 'unicode-äöü-日本語-😀.txt'), 'unicode ✓\n');
  await fs.writeFile(path.join(root, `${'long-'.repeat(30)}name.txt`), 'a name past 100 bytes\n');
}

/** A described tree reduced to what every archive format keeps: kind, size, content and link target. */
export async function contentOf(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [p, e] of await describeTree(root)) out[p] = e.type === 'file' ? `file ${e.size} ${e.hash}` : e.type === 'symlink' ? `symlink ${e.link}` : e.type;
  return out;
}

/** Decompresses a whole single-stream copy (small test files only). */
export function decompressCopy(data: Buffer, ext: string): Buffer {
  if (ext.endsWith('gz')) return zlib.gunzipSync(data);
  if (ext.endsWith('zz')) return zlib.inflateSync(data);
  if (ext.endsWith('br')) return zlib.brotliDecompressSync(data);
  if (ext.endsWith('zst')) return zstdDecompress(data);
  throw new Error(`no decompressor for ${ext}`);
}

/** Runs the format's own checker on a written copy: `gzip -t`, `zstd -t` or `unzip -t` (zlib and brotli have none here: decoded by node). */
export async function checkWithTool(file: string): Promise<void> {
  if (file.endsWith('.gz')) ok(await runCommand('gzip', ['-t', file]), 'gzip -t');
  else if (file.endsWith('.zst')) ok(await runCommand('zstd', ['-q', '-t', file]), 'zstd -t');
  else if (file.endsWith('.zip')) ok(await runCommand('unzip', ['-t', file]), 'unzip -t');
  else decompressCopy(await fs.readFile(file), file);
}

/**
 * Unpacks a folder's copy (`x.tar.<ext>` through `tar`, or `x.zip` through `unzip`) into a new folder, after
 * checking that `tar -t` lists exactly `expected` entries; returns the folder.
 */
export async function unpackFolderCopy(file: string, expected?: string[]): Promise<string> {
  const dir = await tempDir('cairn-unpacked-');
  if (file.endsWith('.zip')) {
    ok(await runCommand('unzip', ['-q', file, '-d', dir]), 'unzip');
    return dir;
  }
  const tarFile = path.join(await tempDir('cairn-tar-'), 'copy.tar');
  await fs.writeFile(tarFile, decompressCopy(await fs.readFile(file), file));
  const listed = ok(await runCommand('tar', ['-tf', tarFile]), 'tar -t').out.split('\n').filter((l) => l !== '');
  if (expected !== undefined) expect(listed.sort()).toEqual([...expected].sort());
  ok(await runCommand('tar', ['-xf', tarFile, '-C', dir]), 'tar -x');
  return dir;
}

/** The entries `tar -t` prints for a folder archived under `top`: folders with a trailing slash. */
export async function tarListing(root: string, top: string): Promise<string[]> {
  const entries = await describeTree(root);
  return [`${top}/`, ...[...entries].map(([p, e]) => (e.type === 'dir' ? `${top}/${p}/` : `${top}/${p}`))];
}
