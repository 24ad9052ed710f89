import fs from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { goModeFromUnix, nodeTypeFromUnix } from './filemode.js';
import { formatTime } from './time.js';
import { goQuote } from './goquote.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'dev' | 'chardev' | 'fifo' | 'socket';

/**
 * A tree node with restic's JSON field names, declared in restic's JSON order. Numbers above 2^53
 * (exotic inode or device numbers) lose precision in JavaScript; Linux file systems stay below.
 */
export interface Node {
  name: string;
  type: NodeType;
  mode?: number;
  mtime: string;
  atime: string;
  ctime: string;
  uid: number;
  gid: number;
  user?: string;
  group?: string;
  inode?: number;
  device_id?: number;
  size?: number;
  links?: number;
  linktarget?: string;
  linktarget_raw?: string;
  extended_attributes?: { name: string; value: string }[];
  device?: number;
  content: string[] | null;
  subtree?: string;
  error?: string;
}

function readIdFile(file: string): Map<number, string> {
  const m = new Map<number, string>();
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && /^\d+$/.test(f[2]) && !m.has(Number(f[2]))) m.set(Number(f[2]), f[0]);
    }
  } catch {
    // No passwd or group file (a container): names stay empty, as restic leaves them.
  }
  return m;
}

let users: Map<number, string> | null = null;
let groups: Map<number, string> | null = null;

export function userName(uid: number): string | undefined {
  users ??= readIdFile('/etc/passwd');
  return users.get(uid);
}

export function groupName(gid: number): string | undefined {
  groups ??= readIdFile('/etc/group');
  return groups.get(gid);
}

/** A node from lstat; directories get their subtree and files their content later. */
export function nodeFromStat(name: string, st: BigIntStats, linkTarget?: string): Node {
  const stMode = Number(st.mode);
  const type = nodeTypeFromUnix(stMode);
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const n: Node = {
    name,
    type,
    mode: goModeFromUnix(stMode),
    mtime: formatTime(st.mtimeNs),
    atime: formatTime(st.atimeNs),
    ctime: formatTime(st.ctimeNs),
    uid,
    gid,
    user: userName(uid),
    group: groupName(gid),
    inode: Number(st.ino),
    device_id: Number(st.dev),
    links: Number(st.nlink),
    content: null,
  };
  if (type === 'file') {
    n.size = Number(st.size);
    n.content = [];
  }
  if (type === 'symlink') n.linktarget = linkTarget ?? '';
  if (type === 'dev' || type === 'chardev') n.device = Number(st.rdev);
  return n;
}

const ORDER: (keyof Node)[] = [
  'name', 'type', 'mode', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'user', 'group', 'inode', 'device_id',
  'size', 'links', 'linktarget', 'linktarget_raw', 'extended_attributes', 'device', 'content', 'subtree', 'error',
];
/** Fields restic writes even when empty or zero. */
const ALWAYS = new Set<keyof Node>(['name', 'type', 'mtime', 'atime', 'ctime', 'uid', 'gid', 'content']);

/** restic's JSON for a node: its field order, `omitempty` rules, `content` null unless a file. */
export function nodeToJSON(n: Node): string {
  const o: Record<string, unknown> = {};
  for (const k of ORDER) {
    const v = n[k];
    if (ALWAYS.has(k)) {
      o[k] = k === 'content' ? (v ?? null) : k === 'name' ? goQuote(v as string) : v;
      continue;
    }
    if (v === undefined || v === null || v === 0 || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    o[k] = v;
  }
  return JSON.stringify(o);
}

/** Orders nodes by name in byte order, as Go compares strings. */
export function nodeCompare(a: Node, b: Node): number {
  if (a.name === b.name) return 0;
  return Buffer.compare(Buffer.from(a.name, 'utf8'), Buffer.from(b.name, 'utf8'));
}
