import { CairnError } from '../errors.js';
import type { Node } from '../fs/node.js';
import { shortId } from '../repository/id.js';
import type { Repository } from '../repository/repository.js';
import type { Snapshot } from '../repository/snapshot.js';
import { findSubtree } from './restorer.js';

/** The node of the file at `filePath` (absolute, as `ls` shows it) in a snapshot. */
export async function findFileNode(repo: Repository, snap: Snapshot, filePath: string): Promise<Node> {
  const abs = filePath.startsWith('/') ? filePath : `/${filePath}`;
  const dir = abs.slice(0, abs.lastIndexOf('/')) || '/';
  const name = abs.slice(abs.lastIndexOf('/') + 1);
  const { tree } = await findSubtree(repo, snap.tree, dir);
  const node = (await repo.loadTree(tree)).nodes.find((n) => n.name === name);
  if (!node) throw new CairnError('NOT_FOUND', `${abs} is not in snapshot ${shortId(snap.id)}`);
  if (node.type !== 'file') throw new CairnError('BAD_INPUT', `${abs} is a ${node.type}, not a file`);
  return node;
}

/**
 * A file's content, blob by blob, with the next few blobs loaded ahead so a slow consumer and a
 * slow backend overlap. Each blob is hash-checked as it is loaded. The index must be loaded.
 */
export async function* fileContent(repo: Repository, node: Node, ahead = 4): AsyncGenerator<Buffer> {
  const ids = node.content ?? [];
  const loading: Promise<Buffer>[] = [];
  let next = 0;
  const fill = (): void => {
    while (next < ids.length && loading.length < ahead) {
      const p = repo.loadBlob('data', ids[next++]);
      p.catch(() => undefined);
      loading.push(p);
    }
  };
  fill();
  while (loading.length > 0) {
    const data = await loading.shift()!;
    fill();
    yield data;
  }
}
