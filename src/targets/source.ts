import type { Stats } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buildExcluder, type Excluder } from '../archiver/excludes.js';
import { CairnError } from '../errors.js';

/** What a target reads: a file or folder, with restic's exclude patterns (see archiver/excludes.ts). */
export interface TargetSource {
  path: string;
  excludes?: string[];
}

/** Progress of a target run: files and bytes read so far, and the item being read. */
export interface TargetProgress {
  files: number;
  bytes: number;
  current?: string;
}

/** A file or folder that could not be read and was left out; the run goes on. */
export interface SkippedItem {
  path: string;
  error: string;
}

/** One entry of a walked tree, with its path relative to the walked folder (slash-separated). */
export interface TreeEntry {
  rel: string;
  abs: string;
  kind: 'file' | 'dir' | 'symlink';
  stat: Stats;
}

export async function excluderFor(source: TargetSource): Promise<Excluder> {
  return buildExcluder({ exclude: source.excludes ?? [] });
}

/**
 * Walks the folder `root` depth-first, names in byte order, each folder before its contents; the root itself is
 * not yielded. Excluded paths are not yielded nor descended into; devices, fifos and sockets are left out.
 * A folder or entry that cannot be read is passed to `skip` and left out; if the root itself disappears, the
 * walk throws NOT_FOUND, since a copy of half a vanished folder would look complete.
 */
export async function* walkTree(root: string, excluder: Excluder, skip: (item: SkippedItem) => void, below = ''): AsyncGenerator<TreeEntry> {
  const dir = below === '' ? root : path.join(root, below);
  let names: string[];
  try {
    names = (await fs.readdir(dir)).sort(byteOrder);
  } catch (err) {
    await checkStillThere(root);
    skip({ path: dir, error: errorText(err) });
    return;
  }
  for (const name of names) {
    const abs = path.join(dir, name);
    if (excluder.excluded(abs)) continue;
    let stat: Stats;
    try {
      stat = await fs.lstat(abs);
    } catch (err) {
      await checkStillThere(root);
      skip({ path: abs, error: errorText(err) });
      continue;
    }
    const rel = below === '' ? name : `${below}/${name}`;
    if (stat.isDirectory()) {
      yield { rel, abs, kind: 'dir', stat };
      yield* walkTree(root, excluder, skip, rel);
    } else if (stat.isFile()) yield { rel, abs, kind: 'file', stat };
    else if (stat.isSymbolicLink()) yield { rel, abs, kind: 'symlink', stat };
  }
}

/** Throws NOT_FOUND naming the source when its root has gone (deleted or unmounted) while it was being read. */
export async function checkStillThere(root: string): Promise<void> {
  try {
    await fs.stat(root);
  } catch (err) {
    throw new CairnError('NOT_FOUND', `source ${root} disappeared during the run (${errorText(err)}); nothing was written for it`, { cause: err });
  }
}

export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function errorText(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** Reads this many bytes at a time, so an abort or a slow destination holds at most one piece in memory. */
const PIECE = 1024 * 1024;

/**
 * A stream of exactly `size` bytes of an open file, for formats that write the size first (tar, zip): if the
 * file grows meanwhile, the rest is left out; if it shrinks, the stream is padded with zeros. Either way
 * `onChanged` is called, so the run can report the copy as inconsistent. The handle is closed at the end.
 */
export function fixedSizeReader(handle: FileHandle, size: number, onChanged: () => void, onBytes: (n: number) => void): Readable {
  let pos = 0;
  let changed = false;
  const mark = () => {
    if (!changed) onChanged();
    changed = true;
  };
  return new Readable({
    highWaterMark: PIECE,
    async read() {
      try {
        if (pos >= size) {
          const probe = Buffer.allocUnsafe(1);
          if ((await handle.read(probe, 0, 1, pos)).bytesRead > 0) mark();
          this.push(null);
          return;
        }
        const want = Math.min(PIECE, size - pos);
        const buf = Buffer.allocUnsafe(want);
        let { bytesRead } = await handle.read(buf, 0, want, pos);
        if (bytesRead === 0) {
          mark();
          buf.fill(0);
          bytesRead = want;
        }
        pos += bytesRead;
        onBytes(bytesRead);
        this.push(buf.subarray(0, bytesRead));
      } catch (err) {
        this.destroy(err as Error);
      }
    },
    destroy(err, cb) {
      handle.close().then(
        () => cb(err),
        () => cb(err),
      );
    },
  });
}
