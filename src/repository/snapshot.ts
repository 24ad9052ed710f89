import os from 'node:os';
import type { Id } from './id.js';

/** restic 0.17's snapshot summary. */
export interface SnapshotSummary {
  backup_start: string;
  backup_end: string;
  files_new: number;
  files_changed: number;
  files_unmodified: number;
  dirs_new: number;
  dirs_changed: number;
  dirs_unmodified: number;
  data_blobs: number;
  tree_blobs: number;
  data_added: number;
  data_added_packed: number;
  total_files_processed: number;
  total_bytes_processed: number;
}

/** A snapshot file's JSON, with restic's field names and order. */
export interface SnapshotJSON {
  time: string;
  parent?: Id;
  tree: Id;
  paths: string[];
  hostname?: string;
  username?: string;
  uid?: number;
  gid?: number;
  excludes?: string[];
  tags?: string[];
  original?: Id;
  program_version?: string;
  summary?: SnapshotSummary;
}

/** A snapshot as loaded, with its id. */
export interface Snapshot extends SnapshotJSON {
  id: Id;
}

export const PROGRAM_VERSION = 'cairn 0.1.0';

export function currentUser(): { username: string; uid: number; gid: number } {
  try {
    const u = os.userInfo();
    return { username: u.username, uid: u.uid, gid: u.gid };
  } catch {
    return { username: '', uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  }
}

/** Serialises in restic's field order, omitting empty optional fields as restic's omitempty does. */
export function snapshotToJSON(s: SnapshotJSON): string {
  const o: Record<string, unknown> = { time: s.time };
  if (s.parent) o.parent = s.parent;
  o.tree = s.tree;
  o.paths = s.paths;
  if (s.hostname) o.hostname = s.hostname;
  if (s.username) o.username = s.username;
  if (s.uid) o.uid = s.uid;
  if (s.gid) o.gid = s.gid;
  if (s.excludes && s.excludes.length > 0) o.excludes = s.excludes;
  if (s.tags && s.tags.length > 0) o.tags = s.tags;
  if (s.original) o.original = s.original;
  if (s.program_version) o.program_version = s.program_version;
  if (s.summary) o.summary = s.summary;
  return JSON.stringify(o);
}

/** A snapshot as restic prints it in JSON output (`snapshots`, `ls`, `forget`): its fields, then id and short_id. */
export function snapshotOutput(s: Snapshot): Record<string, unknown> {
  const { id, ...rest } = s;
  return { ...rest, id, short_id: id.slice(0, 8) };
}
