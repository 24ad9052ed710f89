import fs from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { goModeFromUnix, nodeTypeFromUnix } from './filemode.js';
import { formatTime } from './time.js';
import { goQuote, goQuoteBytes } from './goquote.js';

export type NodeType = 'file' | 'dir' | 'symlink' | 'dev' | 'chardev' | 'fifo' | 'socket';

/**
 * A tree node with restic's JSON field names, declared in restic's JSON order. Numbers above 2^53
 * (exotic inode or device numbers) lose precision in JavaScript; Linux file systems stay below.
 */
export interface Node {
  /** The name as text; when the real name is not UTF-8, a readable stand-in (see `nameRaw`). */
  name: string;
  /** The name's bytes when they are not valid UTF-8; never written to JSON as such. */
  nameRaw?: Buffer;
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

/** What is read of an entry's lstat: a real BigIntStats, or a view of a folder listing. */
export type EntryStat = Pick<
  BigIntStats,
  'dev' | 'mode' | 'nlink' | 'uid' | 'gid' | 'rdev' | 'ino' | 'size' | 'atimeNs' | 'mtimeNs' | 'ctimeNs' | 'isFile' | 'isDirectory' | 'isSymbolicLink'
>;

/**
 * A node from lstat; directories get their subtree and files their content later. The access time
 * is the modification time unless `withAtime`, as restic stores it without --with-atime: reading a
 * file moves its atime, and a tree that recorded it would change with every reader.
 */
export function nodeFromStat(name: string, st: EntryStat, linkTarget?: string, withAtime = false): Node {
  const stMode = Number(st.mode);
  const type = nodeTypeFromUnix(stMode);
  const uid = Number(st.uid);
  const gid = Number(st.gid);
  const mtime = formatTime(st.mtimeNs);
  const n: Node = {
    name,
    type,
    mode: goModeFromUnix(stMode),
    mtime,
    atime: withAtime ? formatTime(st.atimeNs) : mtime,
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

/**
 * restic's JSON for a node: its field order, `omitempty` rules (zero numbers and empty strings left
 * out), `content` null unless a file. Written by hand: trees are re-encoded for every folder of
 * every backup, and this is several times faster than building an object for JSON.stringify.
 */
export function nodeToJSON(n: Node): string {
  const q = JSON.stringify;
  let s = `{"name":${q(n.nameRaw ? goQuoteBytes(n.nameRaw) : goQuote(n.name))},"type":${q(n.type)}`;
  if (n.mode) s += `,"mode":${n.mode}`;
  s += `,"mtime":${q(n.mtime)},"atime":${q(n.atime)},"ctime":${q(n.ctime)},"uid":${n.uid},"gid":${n.gid}`;
  if (n.user) s += `,"user":${q(n.user)}`;
  if (n.group) s += `,"group":${q(n.group)}`;
  if (n.inode) s += `,"inode":${n.inode}`;
  if (n.device_id) s += `,"device_id":${n.device_id}`;
  if (n.size) s += `,"size":${n.size}`;
  if (n.links) s += `,"links":${n.links}`;
  if (n.linktarget) s += `,"linktarget":${q(n.linktarget)}`;
  if (n.linktarget_raw) s += `,"linktarget_raw":${q(n.linktarget_raw)}`;
  if (n.extended_attributes && n.extended_attributes.length > 0) s += `,"extended_attributes":${q(n.extended_attributes)}`;
  if (n.device) s += `,"device":${n.device}`;
  s += `,"content":${n.content ? q(n.content) : 'null'}`;
  if (n.subtree) s += `,"subtree":${q(n.subtree)}`;
  if (n.error) s += `,"error":${q(n.error)}`;
  return `${s}}`;
}

function sameAttrs(a: Node['extended_attributes'], b: Node['extended_attributes']): boolean {
  const x = a ?? [];
  const y = b ?? [];
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i].name !== y[i].name || x[i].value !== y[i].value) return false;
  return true;
}

function sameContent(a: string[] | null | undefined, b: string[] | null | undefined): boolean {
  if ((a ?? null) === (b ?? null)) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether two nodes encode to the same JSON (every field `nodeToJSON` writes, with its omitempty
 * rules). A folder whose nodes all equal its parent snapshot's keeps the parent's tree as it is.
 */
export function sameNode(a: Node, b: Node): boolean {
  if (a === b) return true;
  return (
    a.name === b.name &&
    (a.nameRaw === b.nameRaw || (!!a.nameRaw && !!b.nameRaw && a.nameRaw.equals(b.nameRaw))) &&
    a.type === b.type &&
    (a.mode || 0) === (b.mode || 0) &&
    a.mtime === b.mtime &&
    a.atime === b.atime &&
    a.ctime === b.ctime &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    (a.user || '') === (b.user || '') &&
    (a.group || '') === (b.group || '') &&
    (a.inode || 0) === (b.inode || 0) &&
    (a.device_id || 0) === (b.device_id || 0) &&
    (a.size || 0) === (b.size || 0) &&
    (a.links || 0) === (b.links || 0) &&
    (a.linktarget || '') === (b.linktarget || '') &&
    (a.linktarget_raw || '') === (b.linktarget_raw || '') &&
    sameAttrs(a.extended_attributes, b.extended_attributes) &&
    (a.device || 0) === (b.device || 0) &&
    sameContent(a.content, b.content) &&
    (a.subtree || '') === (b.subtree || '') &&
    (a.error || '') === (b.error || '')
  );
}

/** Orders nodes by name in byte order, as Go compares strings. */
export function nodeCompare(a: Node, b: Node): number {
  if (!a.nameRaw && !b.nameRaw) return utf8Compare(a.name, b.name);
  return Buffer.compare(a.nameRaw ?? Buffer.from(a.name, 'utf8'), b.nameRaw ?? Buffer.from(b.name, 'utf8'));
}

/**
 * Compares two strings in the byte order of their UTF-8 encodings without encoding them. UTF-16
 * code units below U+D800 order as their UTF-8 bytes do; only surrogates against U+E000-U+FFFF
 * disagree, and those are left to the encoder.
 */
export function utf8Compare(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x < 0xd800 && y < 0xd800) return x < y ? -1 : 1;
    return Buffer.compare(Buffer.from(a.slice(i), 'utf8'), Buffer.from(b.slice(i), 'utf8'));
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

/** A key that tells names apart even when they are not UTF-8 (for looking nodes up by name). */
export function nameKey(n: { name: string; nameRaw?: Buffer }): string {
  return n.nameRaw ? `\0raw:${n.nameRaw.toString('hex')}` : n.name;
}
