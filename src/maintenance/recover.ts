/**
 * restic's `recover`: a snapshot of every folder tree the repository holds that no snapshot
 * reaches, for when snapshots were forgotten by mistake or their files lost. The trees are found
 * in the index; a root is a tree that no other tree holds as a folder and no snapshot starts at.
 * The new snapshot (path `/recover`, tag `recovered`) has one folder per root, named by the
 * root's short id, so `restore`, `ls` and `restic` read what was there.
 */
import os from 'node:os';
import { CairnError } from '../errors.js';
import { GoMode } from '../fs/filemode.js';
import { formatTime } from '../fs/time.js';
import type { Node } from '../fs/node.js';
import type { Id } from '../repository/id.js';
import type { Repository } from '../repository/repository.js';
import { PROGRAM_VERSION, currentUser } from '../repository/snapshot.js';
import { encodeTree } from '../repository/tree.js';
import { mapLimit } from '../util/limit.js';

export interface RecoverResult {
  /** Trees in the index. */
  trees: number;
  /** The unreferenced roots, sorted. */
  roots: Id[];
  /** The new snapshot, or null when there was nothing to recover (or `dryRun`). */
  snapshotId: Id | null;
  /** Trees that did not load: what they hold cannot be told apart from roots, so it is left out. */
  unreadable: { id: Id; message: string }[];
}

export async function recover(repo: Repository, opts: { host?: string; dryRun?: boolean; signal?: AbortSignal; onProgress?: (done: number, total: number) => void } = {}): Promise<RecoverResult> {
  await repo.loadIndex();
  const trees: Id[] = [];
  for (const [key, loc] of repo.index.entries()) if (loc.type === 'tree') trees.push(key.slice(-64));
  const held = new Set<Id>();
  const unreadable: RecoverResult['unreadable'] = [];
  let done = 0;
  await mapLimit(trees, 8, async (id) => {
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'recover interrupted');
    try {
      for (const n of (await repo.loadTree(id)).nodes) if (n.type === 'dir' && n.subtree) held.add(n.subtree);
    } catch (err) {
      if (err instanceof CairnError && err.code === 'INTERRUPTED') throw err;
      unreadable.push({ id, message: (err as Error).message });
    }
    opts.onProgress?.(++done, trees.length);
  });
  for (const s of await repo.listSnapshots()) held.add(s.tree);
  const broken = new Set(unreadable.map((u) => u.id));
  const roots = trees.filter((t) => !held.has(t) && !broken.has(t)).sort();
  if (roots.length === 0 || opts.dryRun) return { trees: trees.length, roots, snapshotId: null, unreadable };

  const now = formatTime(BigInt(Date.now()) * 1_000_000n);
  const user = currentUser();
  const nodes: Node[] = roots.map((id) => ({ name: id.slice(0, 8), type: 'dir', mode: GoMode.Dir + 0o755, mtime: now, atime: now, ctime: now, uid: user.uid, gid: user.gid, content: null, subtree: id }));
  // Two roots with the same first 8 digits would give one name twice: the longer id tells them apart.
  const seen = new Map<string, number>();
  for (const n of nodes) seen.set(n.name, (seen.get(n.name) ?? 0) + 1);
  for (const n of nodes) if ((seen.get(n.name) ?? 0) > 1) n.name = n.subtree!;
  nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const { id: tree } = await repo.saveBlob('tree', encodeTree(nodes));
  await repo.flush();
  const snapshotId = await repo.saveSnapshot({
    time: now,
    tree,
    paths: ['/recover'],
    hostname: opts.host ?? os.hostname(),
    username: user.username,
    uid: user.uid,
    gid: user.gid,
    tags: ['recovered'],
    program_version: PROGRAM_VERSION,
  });
  return { trees: trees.length, roots, snapshotId, unreadable };
}
