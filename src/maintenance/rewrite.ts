/**
 * `rewrite`: snapshots without the files and folders that exclude patterns match, as restic's
 * rewrite makes them. Each changed snapshot is saved anew with its time, host, paths and tags, the
 * tag `rewrite` (unless the original is removed with `forget`), and `original` naming the snapshot
 * it started as; its summary goes, since it described the files that were there. Trees that lose
 * nothing keep their ids, so a rewrite stores only the trees on the way to what was cut out.
 */
import { CairnError } from '../errors.js';
import type { Node } from '../fs/node.js';
import { hashId, type Id } from '../repository/id.js';
import type { Repository } from '../repository/repository.js';
import type { Snapshot, SnapshotJSON } from '../repository/snapshot.js';
import { encodeTree } from '../repository/tree.js';

export interface RewriteOptions {
  /** Whether restic's exclude patterns leave out this path (as shown: `/home/a/file`). */
  excluded: (path: string) => boolean;
  forget?: boolean;
  dryRun?: boolean;
  signal?: AbortSignal;
}

export interface RewrittenSnapshot {
  id: Id;
  /** The new snapshot, once saved (saveRewritten). */
  newId?: Id;
  /** What was left out: the topmost path of each excluded file or folder. */
  excluded: string[];
  /** The new snapshot to save; absent when nothing was left out. */
  next?: SnapshotJSON;
}

export async function rewriteSnapshot(repo: Repository, snap: Snapshot, opts: RewriteOptions, memo = new Map<string, { id: Id; excluded: string[] }>()): Promise<RewrittenSnapshot> {
  const saveTree = async (nodes: Node[]): Promise<Id> => {
    const bytes = encodeTree(nodes);
    return opts.dryRun ? hashId(bytes) : (await repo.saveBlob('tree', bytes)).id;
  };
  // What is excluded depends on where a tree sits, so a tree is rewritten once per path.
  const rewriteTree = async (id: Id, dir: string): Promise<{ id: Id; excluded: string[] }> => {
    const key = `${dir}\0${id}`;
    const known = memo.get(key);
    if (known) return known;
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'rewrite interrupted');
    const nodes: Node[] = [];
    const excluded: string[] = [];
    let changed = false;
    for (const node of (await repo.loadTree(id)).nodes) {
      const p = `${dir}/${node.name}`;
      if (opts.excluded(p)) {
        excluded.push(p);
        changed = true;
        continue;
      }
      if (node.type === 'dir' && node.subtree) {
        const sub = await rewriteTree(node.subtree, p);
        excluded.push(...sub.excluded);
        if (sub.id !== node.subtree) {
          changed = true;
          nodes.push({ ...node, subtree: sub.id });
          continue;
        }
      }
      nodes.push(node);
    }
    const result = { id: changed ? await saveTree(nodes) : id, excluded };
    memo.set(key, result);
    return result;
  };

  const tree = await rewriteTree(snap.tree, '');
  if (tree.id === snap.tree) return { id: snap.id, excluded: [] };
  const { id, summary: _summary, ...rest } = snap;
  const tags = [...(snap.tags ?? [])];
  if (!opts.forget && !tags.includes('rewrite')) tags.push('rewrite');
  return { id, excluded: tree.excluded, next: { ...rest, tree: tree.id, tags, original: snap.original ?? id } };
}

/**
 * Saves the rewritten snapshots: their trees first (one flush for all, so that few small packs
 * are written), then each snapshot, then (with `forget`) each original, so that a crash leaves
 * at worst an original beside its rewritten copy.
 */
export async function saveRewritten(repo: Repository, results: RewrittenSnapshot[], forget: boolean): Promise<void> {
  await repo.flush();
  for (const r of results) {
    if (!r.next) continue;
    r.newId = await repo.saveSnapshot(r.next);
    if (forget) await repo.backend.remove({ type: 'snapshot', name: r.id });
  }
}
