import { execFile } from 'node:child_process';
import fsSync from 'node:fs';
import { promisify } from 'node:util';
import { CairnError } from '../errors.js';
import { unixPermFromGoMode } from './filemode.js';
import type { Node } from './node.js';
import { parseTime, splitNs } from './time.js';
import { writeXattrs } from './xattr.js';

const run = promisify(execFile);

/** libuv truncates to whole microseconds after converting the double, so aim at the middle of the microsecond. */
export function toSeconds(s: string): number {
  const { seconds, nanoseconds } = splitNs(parseTime(s));
  return Number(seconds) + (Math.floor(nanoseconds / 1000) * 1000 + 500) / 1e9;
}

/** glibc's encoding of st_rdev into major and minor numbers. */
export function splitDevice(rdev: number): { major: number; minor: number } {
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return { major, minor };
}

/**
 * Creates a fifo or device node. Node has no mknod(2), so the coreutils commands do it (devices
 * need root). Sockets are not restored, as restic does not: a socket belongs to a running process.
 */
export async function createSpecial(path: string, node: Node): Promise<void> {
  switch (node.type) {
    case 'fifo':
      await run('mkfifo', ['--', path]);
      return;
    case 'dev':
    case 'chardev': {
      const { major, minor } = splitDevice(node.device ?? 0);
      await run('mknod', ['--', path, node.type === 'dev' ? 'b' : 'c', String(major), String(minor)]);
      return;
    }
    case 'socket':
      return;
    default:
      throw new CairnError('INTERNAL', `createSpecial called for a ${node.type}`);
  }
}

/**
 * What setting a node's metadata reads: a restore keeps this much of each file and folder, not
 * the whole node. Times are seconds, as utimes takes them (see toSeconds); a time that does not
 * parse stays text, so that setting it fails with the parser's message.
 */
export type NodeMeta = Pick<Node, 'type' | 'mode' | 'uid' | 'gid' | 'extended_attributes'> & { atime: number | string; mtime: number | string };

export function nodeMeta({ type, mode, uid, gid, atime, mtime, extended_attributes }: Node): NodeMeta {
  return { type, mode, uid, gid, atime: secondsOf(atime), mtime: secondsOf(mtime), extended_attributes };
}

function secondsOf(time: string): number | string {
  try {
    return toSeconds(time);
  } catch {
    return time;
  }
}

/**
 * Sets ownership (when `owner`), mode and times from a node. Ownership goes first because chown
 * clears setuid and setgid bits. Node passes times as a double of seconds and libuv keeps whole
 * microseconds, so restored times are exact to the microsecond, not to the nanosecond the snapshot holds.
 * Synchronous calls: worker threads restore many files in a batch. Each step is tried whatever
 * the others did, as restic does, and the first failure is thrown at the end: a file system that
 * refuses an owner or an attribute (a FUSE or network mount, say) still gets the mode and times.
 */
export function applyMetadataSync(path: string | Buffer, node: NodeMeta, opts: { owner: boolean }): void {
  const link = node.type === 'symlink';
  let first: unknown;
  const attempt = (step: () => void): void => {
    try {
      step();
    } catch (err) {
      first ??= err;
    }
  };
  if (opts.owner) attempt(() => fsSync.lchownSync(path, node.uid, node.gid));
  const mode = node.mode;
  if (!link && mode !== undefined) attempt(() => fsSync.chmodSync(path, unixPermFromGoMode(mode)));
  if (!link) attempt(() => writeXattrs(path, node.extended_attributes));
  attempt(() => {
    const atime = typeof node.atime === 'number' ? node.atime : toSeconds(node.atime);
    const mtime = typeof node.mtime === 'number' ? node.mtime : toSeconds(node.mtime);
    if (link) fsSync.lutimesSync(path, atime, mtime);
    else fsSync.utimesSync(path, atime, mtime);
  });
  if (first !== undefined) throw first;
}
