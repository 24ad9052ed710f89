import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

/** Deterministic incompressible bytes (AES-CTR keystream of the seed), so failures reproduce. */
export function seededBytes(seed: number, size: number): Buffer {
  const key = createHash('sha256').update(`seed:${seed}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

/** Compressible text: repeated words with a seeded mix. */
export function textBytes(seed: number, size: number): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'delta', 'backup', 'restore', 'cairn', 'stone', 'river', 'INSERT INTO t VALUES (1, 2);'];
  const parts: string[] = [];
  let n = 0;
  let x = seed || 1;
  while (n < size) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const w = words[x % words.length];
    parts.push(w);
    n += w.length + 1;
  }
  return Buffer.from(parts.join(' ')).subarray(0, size);
}

/**
 * A tree with every node type and odd names: unicode, spaces, a newline, a 255-byte name, deep
 * nesting, empty files and dirs, a sparse file, hardlinks, symlinks, a fifo, a char device, a socket.
 * Returns a closer for the socket's server.
 */
export async function makeOddTree(root: string): Promise<{ close: () => Promise<void> }> {
  await fs.mkdir(root, { recursive: true });
  await fs.writeFile(path.join(root, 'plain.txt'), 'hello world\n');
  await fs.writeFile(path.join(root, 'empty'), '');
  await fs.mkdir(path.join(root, 'empty-dir'));
  await fs.writeFile(path.join(root, 'unicode-äöü-日本語-😀.txt'), 'unicode content ✓\n');
  await fs.writeFile(path.join(root, 'with space and\nnewline'), 'odd name\n');
  await fs.writeFile(path.join(root, 'x'.repeat(255)), 'long name\n');
  let deep = root;
  for (let i = 0; i < 30; i++) deep = path.join(deep, `d${i}`);
  await fs.mkdir(deep, { recursive: true });
  await fs.writeFile(path.join(deep, 'deep.bin'), seededBytes(7, 100_000));
  await fs.writeFile(path.join(root, 'random-3m.bin'), seededBytes(11, 3 * 1024 * 1024 + 17));
  await fs.writeFile(path.join(root, 'text-2m.txt'), textBytes(5, 2 * 1024 * 1024));
  const sparse = await fs.open(path.join(root, 'sparse.img'), 'w');
  await sparse.write(Buffer.from('start'), 0, 5, 0);
  await sparse.write(Buffer.from('end'), 0, 3, 30 * 1024 * 1024);
  await sparse.close();
  await fs.writeFile(path.join(root, 'hardlink-a'), 'shared inode\n');
  await fs.link(path.join(root, 'hardlink-a'), path.join(root, 'hardlink-b'));
  await fs.symlink('plain.txt', path.join(root, 'link-to-plain'));
  await fs.symlink('/nonexistent/target', path.join(root, 'dangling-link'));
  await fs.writeFile(path.join(root, 'exec.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  await fs.chmod(path.join(root, 'exec.sh'), 0o4755);
  await fs.mkdir(path.join(root, 'sticky'), { mode: 0o1777 });
  await fs.chmod(path.join(root, 'sticky'), 0o1777);
  await fs.writeFile(path.join(root, 'owned-by-nobody'), 'nobody\n');
  if (process.getuid?.() === 0) await fs.chown(path.join(root, 'owned-by-nobody'), 65534, 65534);
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  if (process.getuid?.() === 0) execFileSync('mknod', [path.join(root, 'null-dev'), 'c', '1', '3']);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(path.join(root, 'sock'), r));
  await fs.utimes(path.join(root, 'plain.txt'), new Date('2020-02-29T12:34:56.789Z'), new Date('2021-03-04T05:06:07.123Z'));
  return { close: () => new Promise((r) => server.close(() => r())) };
}

export interface Entry {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeNs: bigint;
  hash?: string;
  link?: string;
  rdev?: number;
  /** Paths sharing this entry's inode (hardlink group), relative to the root. */
  group?: string;
}

/** Describes every entry under `root` by relative path: type, mode, owner, size, mtime, content hash. */
export async function describeTree(root: string, opts: { skipSockets?: boolean } = {}): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const inodes = new Map<bigint, string[]>();
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await fs.readdir(dir)).sort()) {
      const abs = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await fs.lstat(abs, { bigint: true });
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : st.isBlockDevice() ? 'dev' : 'socket';
      if (type === 'socket' && opts.skipSockets) continue;
      const e: Entry = { type, mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: type === 'file' ? Number(st.size) : 0, mtimeNs: type === 'dir' ? 0n : st.mtimeNs };
      if (type === 'file') {
        e.hash = createHash('sha256').update(await fs.readFile(abs)).digest('hex');
        if (st.nlink > 1n) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), r]);
      }
      if (type === 'symlink') e.link = await fs.readlink(abs);
      if (type === 'chardev' || type === 'dev') e.rdev = Number(st.rdev);
      out.set(r, e);
      if (type === 'dir') await walk(abs, r);
    }
  };
  await walk(root, '');
  for (const paths of inodes.values()) for (const p of paths) out.get(p)!.group = paths.join('|');
  return out;
}

/** Differences between two described trees; mtimes are compared to `mtimeResolutionNs`. */
export function compareTrees(a: Map<string, Entry>, b: Map<string, Entry>, mtimeResolutionNs = 1n): string[] {
  const diffs: string[] = [];
  for (const [p, ea] of a) {
    const eb = b.get(p);
    if (!eb) {
      diffs.push(`missing: ${p}`);
      continue;
    }
    for (const k of ['type', 'mode', 'uid', 'gid', 'size', 'hash', 'link', 'rdev', 'group'] as const) {
      if (ea[k] !== eb[k]) diffs.push(`${p}: ${k} ${String(ea[k])} != ${String(eb[k])}`);
    }
    const d = ea.mtimeNs - eb.mtimeNs;
    if ((d < 0n ? -d : d) >= mtimeResolutionNs && ea.type !== 'symlink') diffs.push(`${p}: mtime ${ea.mtimeNs} != ${eb.mtimeNs}`);
  }
  for (const p of b.keys()) if (!a.has(p)) diffs.push(`extra: ${p}`);
  return diffs;
}

export function randomName(): string {
  return randomBytes(6).toString('hex');
}

/** The files in a folder and below it, as paths relative to it, sorted. */
export async function filesUnder(root: string): Promise<string[]> {
  return (await fs.readdir(root, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}
