/**
 * restic's `find --blob/--tree/--pack`: where in which snapshots blobs and trees are used, found
 * by id or id prefix, or by the packs that hold them. The troubleshooting half of `check`: check
 * names a damaged pack, and this names the files and folders that lose content with it.
 */
import { CairnError } from '../errors.js';
import type { Node } from '../fs/node.js';
import type { Id } from './id.js';
import type { BlobLocation } from './master-index.js';
import type { BlobType } from './pack.js';
import type { Repository } from './repository.js';
import type { Snapshot } from './snapshot.js';
import { readPackHeader } from '../maintenance/repair.js';

export interface FoundObject {
  type: BlobType;
  id: Id;
  /** The file (blob) or folder (tree) path in the snapshot. */
  path: string;
  /** For a blob: the tree that holds the file's node. */
  parentTree?: Id;
  snapshot: Snapshot;
}

/** What to look for: ids or prefixes of data blobs, and of trees. */
export interface ObjectPatterns {
  blobs: string[];
  trees: string[];
}

const HEX = /^[0-9a-f]+$/;

/** Lower-cased id patterns; BAD_INPUT names one that is not hexadecimal or longer than an id. */
export function parseIdPatterns(patterns: string[], what: string): string[] {
  return patterns.map((p) => {
    const s = p.trim().toLowerCase();
    if (!HEX.test(s) || s.length > 64) throw new CairnError('BAD_INPUT', `invalid ${what} ${JSON.stringify(p)}: give an id or its first hex digits`);
    return s;
  });
}

/**
 * The blobs of the packs `patterns` name (ids or prefixes of packs the index knows; a whole id
 * of a pack the index does not list is read from the pack's header): data blobs as blob
 * patterns, tree blobs as tree patterns. NOT_FOUND names the patterns that match no pack.
 */
export async function packPatterns(repo: Repository, patterns: string[]): Promise<ObjectPatterns> {
  const byPack = new Map<Id, { type: BlobType; id: Id }[]>();
  for (const [key, loc] of repo.index.entries()) {
    let list = byPack.get(loc.packId);
    if (!list) byPack.set(loc.packId, (list = []));
    list.push({ type: loc.type, id: key.slice(-64) });
  }
  const out: ObjectPatterns = { blobs: [], trees: [] };
  const missing: string[] = [];
  for (const p of patterns) {
    const packs = [...byPack.keys()].filter((id) => id.startsWith(p));
    let blobs = packs.flatMap((id) => byPack.get(id)!);
    if (packs.length === 0 && p.length === 64) {
      const st = await repo.backend.stat({ type: 'data', name: p }).catch(() => null);
      if (st) blobs = (await readPackHeader(repo, p, st.size)).map((b) => ({ type: b.type, id: b.id }));
      else missing.push(p);
    } else if (packs.length === 0) missing.push(p);
    for (const b of blobs) (b.type === 'tree' ? out.trees : out.blobs).push(b.id);
  }
  if (missing.length > 0) throw new CairnError('NOT_FOUND', `unable to find pack(s): [${missing.join(' ')}]`);
  return out;
}

/**
 * Walks each snapshot's trees in order (folders before what follows them, names in tree order)
 * and reports every file whose content uses a wanted blob and every folder whose tree is a
 * wanted one, the snapshot's root too (restic leaves roots out). A tree found to hold nothing
 * wanted is not walked again in later snapshots.
 */
export async function findObjects(repo: Repository, snaps: Snapshot[], want: ObjectPatterns, onFound: (f: FoundObject) => void, signal?: AbortSignal): Promise<void> {
  const matchBlob = matcher(want.blobs);
  const matchTree = matcher(want.trees);
  const barren = new Set<Id>();
  const walk = async (treeId: Id, dir: string, snap: Snapshot): Promise<boolean> => {
    if (signal?.aborted) throw new CairnError('INTERRUPTED', 'find interrupted');
    if (barren.has(treeId)) return false;
    let any = false;
    for (const n of (await repo.loadTree(treeId)).nodes as Node[]) {
      const p = `${dir}/${n.name}`;
      if (n.type === 'file') {
        for (const id of n.content ?? []) {
          if (!matchBlob(id)) continue;
          any = true;
          onFound({ type: 'data', id, path: p, parentTree: treeId, snapshot: snap });
        }
      } else if (n.type === 'dir' && n.subtree) {
        if (matchTree(n.subtree)) {
          any = true;
          onFound({ type: 'tree', id: n.subtree, path: p, snapshot: snap });
        }
        if (await walk(n.subtree, p, snap)) any = true;
      }
    }
    if (!any) barren.add(treeId);
    return any;
  };
  for (const snap of snaps) {
    // A snapshot's own tree is no folder's node; it is reported as the folder "/".
    if (matchTree(snap.tree)) onFound({ type: 'tree', id: snap.tree, path: '/', snapshot: snap });
    await walk(snap.tree, '', snap);
  }
}

function matcher(patterns: string[]): (id: Id) => boolean {
  if (patterns.length === 0) return () => false;
  const whole = new Set(patterns.filter((p) => p.length === 64));
  const prefixes = patterns.filter((p) => p.length < 64);
  return (id) => whole.has(id) || prefixes.some((p) => id.startsWith(p));
}

/** restic's line for a blob's place in its pack: `<Blob (data) 1234abcd, offset 0, length 47, uncompressed length 6>`. */
export function describeLocation(id: Id, loc: BlobLocation): string {
  return `<Blob (${loc.type}) ${id.slice(0, 8)}, offset ${loc.offset}, length ${loc.length}, uncompressed length ${loc.uncompressedLength ?? 0}>`;
}
