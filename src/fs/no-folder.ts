import fs from 'node:fs';
import path from 'node:path';
import type { FsPath } from './fspath.js';

/**
 * Why folder `dir` could not be made (`err`, from mkdir or stat), as a user reads it: the nearest
 * folder above it that exists is asked. Node's recursive mkdir reports a read-only file system as
 * ENOENT ("no such file or directory"), and a file in the way as ENOTDIR on some path below it.
 */
export function whyNoFolder(dir: FsPath, err: unknown): string {
  let above = typeof dir === 'string' ? path.dirname(dir) : null;
  while (above !== null) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(above);
    } catch {
      // Not there (or below a file): the folder above says more.
    }
    if (st) {
      if (!st.isDirectory()) return `${above} is not a folder`;
      try {
        fs.accessSync(above, fs.constants.W_OK);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EROFS') return `the file system of ${above} is read-only`;
        if (code === 'EACCES' || code === 'EPERM') return `permission denied: this user cannot write to ${above}`;
      }
      break;
    }
    const up = path.dirname(above);
    above = up === above ? null : up;
  }
  return (err as Error).message;
}
