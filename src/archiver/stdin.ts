import os from 'node:os';
import type { Readable } from 'node:stream';
import { Chunker } from '../chunker/chunker.js';
import { CairnError } from '../errors.js';
import { GoMode } from '../fs/filemode.js';
import type { Node } from '../fs/node.js';
import { formatTime } from '../fs/time.js';
import type { Repository } from '../repository/repository.js';
import { PROGRAM_VERSION, currentUser, type SnapshotSummary } from '../repository/snapshot.js';
import { encodeTree } from '../repository/tree.js';
import type { WorkerPool } from '../repository/worker-pool.js';
import type { BackupResult } from './archiver.js';

export interface StreamBackupOptions {
  host?: string;
  tags?: string[];
  parent?: string;
  /** The snapshot's time (restic's --time), nanoseconds since the epoch; default: when the backup started. */
  timeNs?: bigint;
  signal?: AbortSignal;
}

/**
 * Backs up a stream (`backup --stdin`) as one file named `name` at the root of a new snapshot. The
 * stream is chunked here and each chunk sealed by the pool; at most a few chunks are in flight.
 */
export async function backupStream(repo: Repository, pool: WorkerPool, input: Readable | AsyncIterable<Buffer>, name: string, opts: StreamBackupOptions = {}): Promise<BackupResult> {
  if (!name || name.includes('/') || name === '.' || name === '..') {
    throw new CairnError('BAD_INPUT', `invalid --stdin-filename ${JSON.stringify(name)}: give a plain file name`);
  }
  return backupStreamAt(repo, pool, input, `/${name}`, opts);
}

/**
 * Like `backupStream`, but the file may sit in folders (`/mysql/shop.sql`): the folders are made
 * up as plain 0755 directories owned by the current user. The snapshot's path is the file's path,
 * so `--path /mysql/shop.sql` finds every snapshot of that one stream. An error from the stream
 * (a dump that failed) propagates before any snapshot is written.
 */
export async function backupStreamAt(
  repo: Repository,
  pool: WorkerPool,
  input: Readable | AsyncIterable<Buffer>,
  filePath: string,
  opts: StreamBackupOptions = {},
): Promise<BackupResult> {
  const parts = filePath.split('/').filter(Boolean);
  if (!filePath.startsWith('/') || parts.length === 0 || parts.some((p) => p === '.' || p === '..' || p.includes('\0'))) {
    throw new CairnError('BAD_INPUT', `invalid file path ${JSON.stringify(filePath)} for a stream backup`);
  }
  const name = parts[parts.length - 1];
  const start = BigInt(Date.now()) * 1_000_000n;
  const chunker = new Chunker(repo.config.polynomial);
  const content: Promise<string[]>[] = [];
  const summary: SnapshotSummary = {
    backup_start: formatTime(start), backup_end: '', files_new: 1, files_changed: 0, files_unmodified: 0,
    dirs_new: 0, dirs_changed: 0, dirs_unmodified: 0, data_blobs: 0, tree_blobs: 0, data_added: 0,
    data_added_packed: 0, total_files_processed: 1, total_bytes_processed: 0,
  };
  const inFlight: Promise<unknown>[] = [];
  const save = (chunk: Buffer): void => {
    const p = pool.saveBuffer(chunk).then((r) => {
      summary.data_blobs += r.blobsNew;
      summary.data_added += r.bytesNew;
      summary.data_added_packed += r.bytesPacked;
      return r.content;
    });
    p.catch(() => undefined);
    content.push(p);
    inFlight.push(p);
  };
  let pending: Buffer[] = [];
  let pendingLen = 0;
  for await (const data of input as AsyncIterable<Buffer>) {
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'backup interrupted');
    summary.total_bytes_processed += data.length;
    let from = 0;
    for (const cut of chunker.push(data)) {
      pending.push(data.subarray(from, cut));
      save(Buffer.concat(pending, pendingLen + cut - from));
      pending = [];
      pendingLen = 0;
      from = cut;
    }
    if (from < data.length) {
      pending.push(data.subarray(from));
      pendingLen += data.length - from;
    }
    while (inFlight.length > pool.size * 2) await inFlight.shift();
  }
  if (pendingLen > 0) save(Buffer.concat(pending, pendingLen));
  const ids = (await Promise.all(content)).flat();
  const now = formatTime(BigInt(Date.now()) * 1_000_000n);
  const user = currentUser();
  const node: Node = {
    name, type: 'file', mode: 0o644, mtime: now, atime: now, ctime: now, uid: user.uid, gid: user.gid,
    user: user.username, size: summary.total_bytes_processed, content: ids,
  };
  let tree = await repo.saveBlob('tree', encodeTree([node]));
  if (tree.added) summary.tree_blobs++;
  for (let i = parts.length - 2; i >= 0; i--) {
    const dir: Node = { name: parts[i], type: 'dir', mode: GoMode.Dir + 0o755, mtime: now, atime: now, ctime: now, uid: user.uid, gid: user.gid, user: user.username, content: null, subtree: tree.id };
    tree = await repo.saveBlob('tree', encodeTree([dir]));
    if (tree.added) summary.tree_blobs++;
    summary.dirs_new++;
  }
  await pool.flush();
  await repo.flush();
  summary.backup_end = formatTime(BigInt(Date.now()) * 1_000_000n);
  const snapshot = {
    time: formatTime(opts.timeNs ?? start), parent: opts.parent, tree: tree.id, paths: [`/${parts.join('/')}`], hostname: opts.host ?? os.hostname(),
    username: user.username, uid: user.uid, gid: user.gid, tags: opts.tags, program_version: PROGRAM_VERSION, summary,
  };
  const snapshotId = await repo.saveSnapshot(snapshot);
  return { snapshotId, snapshot: { ...snapshot, id: snapshotId }, summary, errors: [] };
}
