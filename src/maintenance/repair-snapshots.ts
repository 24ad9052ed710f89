/**
 * `repair snapshots`: rewrites snapshots whose trees reference data that is gone, with restic's rules:
 * a file loses the content blobs the index no longer has (its size becomes the sum of what is left),
 * a folder whose tree cannot be loaded becomes an empty folder, and the repaired snapshot is saved as a
 * new one that names the old in `original` and carries the tag `repaired`. With `forget` the damaged
 * snapshot is removed. A snapshot whose root tree is gone cannot be repaired; `forget` removes it.
 */
import { CairnError } from '../errors.js';
import type { Node } from '../fs/node.js';
import type { Id } from '../repository/id.js';
import { plaintextLength } from '../repository/master-index.js';
import type { Repository } from '../repository/repository.js';
import type { Snapshot } from '../repository/snapshot.js';
import { encodeTree } from '../repository/tree.js';

export interface RepairSnapshotsOptions {
  forget?: boolean;
  dryRun?: boolean;
  signal?: AbortSignal;
  /** What was changed, one line per item (`file "/a": removed missing content`). */
  onMessage?: (snapshot: Id, message: string) => void;
}

export interface RepairedSnapshot {
  id: Id;
  /** The new snapshot; absent when nothing could be saved (dry run, or the root tree is gone). */
  newId?: Id;
  changes: string[];
  removed: boolean;
}

export interface RepairSnapshotsResult {
  checked: number;
  repaired: RepairedSnapshot[];
}

/** Whether an error says the data is gone or damaged (as opposed to a network hiccup or an interrupt). */
function lost(err: unknown): boolean {
  return err instanceof CairnError && (err.code === 'INTEGRITY' || err.code === 'NOT_FOUND');
}

interface Change {
  path: string;
  what: string;
}

export async function repairSnapshots(repo: Repository, opts: RepairSnapshotsOptions = {}): Promise<RepairSnapshotsResult> {
  const snapshots = await repo.listSnapshots();
  const rewritten = new Map<Id, { id: Id; changes: Change[] }>();
  let emptyTree: Id | null = null;

  const plainSize = (id: Id): number | null => {
    const loc = repo.index.lookup('data', id);
    if (!loc) return null;
    return plaintextLength(loc);
  };

  const saveTree = async (nodes: Node[]): Promise<Id> => {
    if (opts.dryRun) return encodeTree(nodes).toString('hex').slice(0, 64);
    return (await repo.saveBlob('tree', encodeTree(nodes))).id;
  };

  /**
   * The tree at `id` with missing data cut out (the same id when nothing was missing), and what
   * changed, with paths relative to this tree; identical subtrees are repaired once.
   */
  const repairTree = async (id: Id): Promise<{ id: Id; changes: Change[] }> => {
    const known = rewritten.get(id);
    if (known) return known;
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'repair interrupted');
    const tree = await repo.loadTree(id);
    const changes: Change[] = [];
    let changed = false;
    const nodes: Node[] = [];
    for (const node of tree.nodes) {
      const p = `/${node.name}`;
      if (node.type === 'file') {
        const content: Id[] = [];
        let size = 0;
        let missing = false;
        for (const blob of node.content ?? []) {
          const s = plainSize(blob);
          if (s === null) missing = true;
          else {
            content.push(blob);
            size += s;
          }
        }
        if (missing || size !== (node.size ?? 0)) {
          changed = true;
          changes.push({ path: p, what: missing ? 'file: removed missing content' : 'file: fixed incorrect size' });
          nodes.push({ ...node, content, size });
        } else nodes.push(node);
      } else if (node.type === 'dir' && node.subtree) {
        let sub: { id: Id; changes: Change[] };
        try {
          sub = await repairTree(node.subtree);
        } catch (err) {
          if (!lost(err)) throw err;
          emptyTree ??= await saveTree([]);
          sub = { id: emptyTree, changes: [{ path: '', what: 'dir: replaced with empty directory' }] };
        }
        if (sub.id !== node.subtree) {
          changed = true;
          nodes.push({ ...node, subtree: sub.id });
        } else nodes.push(node);
        for (const c of sub.changes) changes.push({ path: p + c.path, what: c.what });
      } else nodes.push(node);
    }
    const result = { id: changed ? await saveTree(nodes) : id, changes };
    rewritten.set(id, result);
    return result;
  };

  const repaired: RepairedSnapshot[] = [];
  for (const snap of snapshots) {
    let fixed: { id: Id; changes: Change[] };
    try {
      fixed = await repairTree(snap.tree);
    } catch (err) {
      if (!lost(err)) throw err;
      const change = `root tree ${snap.tree.slice(0, 8)} cannot be loaded: the snapshot cannot be repaired${opts.forget ? ' and is removed' : '; --forget removes it'}`;
      opts.onMessage?.(snap.id, change);
      if (opts.forget && !opts.dryRun) await repo.backend.remove({ type: 'snapshot', name: snap.id });
      repaired.push({ id: snap.id, changes: [change], removed: Boolean(opts.forget) });
      continue;
    }
    if (fixed.id === snap.tree) continue;
    const changes = fixed.changes.map((c) => `${c.what.split(':')[0]} ${JSON.stringify(c.path)}:${c.what.slice(c.what.indexOf(':') + 1)}`);
    for (const c of changes) opts.onMessage?.(snap.id, c);
    let newId: Id | undefined;
    if (!opts.dryRun) {
      await repo.flush();
      newId = await repo.saveSnapshot(repairedSnapshot(snap, fixed.id));
      if (opts.forget) await repo.backend.remove({ type: 'snapshot', name: snap.id });
    }
    repaired.push({ id: snap.id, newId, changes, removed: Boolean(opts.forget) });
  }
  return { checked: snapshots.length, repaired };
}

function repairedSnapshot(s: Snapshot, tree: Id): Omit<Snapshot, 'id'> {
  const { id, ...rest } = s;
  const tags = [...(s.tags ?? [])];
  if (!tags.includes('repaired')) tags.push('repaired');
  return { ...rest, tree, tags, original: s.original ?? id };
}
