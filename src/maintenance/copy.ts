/**
 * `copy`: snapshots from one repository into another, as restic copies them. Blobs keep their ids
 * (they are hashes of the plaintext), so only the blobs the destination lacks are read, decrypted
 * and sealed again with the destination's key; files are not re-chunked. A copied snapshot names its
 * source in `original`, and a snapshot already copied (same original, time and tree) is skipped.
 * Data and tree blobs go to separate packs; packs, then index files, then the snapshot.
 */
import { CairnError } from '../errors.js';
import type { Id } from '../repository/id.js';
import { PackBuilder } from '../repository/pack.js';
import { PACK_SIZE, type Repository } from '../repository/repository.js';
import type { Snapshot } from '../repository/snapshot.js';
import { decodeTree } from '../repository/tree.js';

export interface CopyOptions {
  signal?: AbortSignal;
  onSnapshot?: (e: { source: Snapshot; copied?: Id; skipped?: boolean }) => void;
}

export interface CopyResult {
  copied: { source: Id; id: Id }[];
  skipped: Id[];
  blobsCopied: number;
  bytesCopied: number;
}

export async function copySnapshots(src: Repository, dst: Repository, snapshots: Snapshot[], opts: CopyOptions = {}): Promise<CopyResult> {
  const existing = new Map<Id, Snapshot[]>();
  for (const s of await dst.listSnapshots()) {
    const key = s.original ?? s.id;
    existing.set(key, [...(existing.get(key) ?? []), s]);
  }
  const result: CopyResult = { copied: [], skipped: [], blobsCopied: 0, bytesCopied: 0 };
  let dataPack: PackBuilder | null = null;
  const visited = new Set<Id>();

  const flushData = async () => {
    const p = dataPack;
    dataPack = null;
    if (!p || p.count === 0) return;
    const { id, bytes, blobs } = p.finish();
    await dst.savePack(id, bytes, blobs);
  };

  const queued = new Set<Id>();
  const copyData = async (id: Id) => {
    if (queued.has(id) || dst.hasBlob('data', id)) return;
    queued.add(id);
    const plain = await src.loadBlob('data', id);
    const sealed = dst.sealBlob(plain, 'data');
    dataPack ??= new PackBuilder(dst.key);
    dataPack.add('data', id, sealed.bytes, sealed.uncompressedLength);
    result.blobsCopied++;
    result.bytesCopied += plain.length;
    if (dataPack.size >= PACK_SIZE) await flushData();
  };

  const copyTree = async (id: Id): Promise<void> => {
    if (visited.has(id)) return;
    visited.add(id);
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'copy interrupted');
    const plain = await src.loadBlob('tree', id);
    const tree = decodeTree(plain, id);
    for (const node of tree.nodes) {
      if (node.type === 'dir' && node.subtree) await copyTree(node.subtree);
      else if (node.type === 'file') for (const blob of node.content ?? []) await copyData(blob);
    }
    if (!dst.hasBlob('tree', id)) {
      await dst.saveBlob('tree', plain, id);
      result.blobsCopied++;
      result.bytesCopied += plain.length;
    }
  };

  for (const s of snapshots) {
    const original = s.original ?? s.id;
    if ((existing.get(original) ?? []).some((d) => d.time === s.time && d.tree === s.tree)) {
      result.skipped.push(s.id);
      opts.onSnapshot?.({ source: s, skipped: true });
      continue;
    }
    await copyTree(s.tree);
    await flushData();
    await dst.flush();
    const { id: _sourceId, ...rest } = s;
    void _sourceId;
    const copied = await dst.saveSnapshot({ ...rest, original });
    existing.set(original, [...(existing.get(original) ?? []), { ...s, id: copied, original }]);
    result.copied.push({ source: s.id, id: copied });
    opts.onSnapshot?.({ source: s, copied });
  }
  return result;
}
