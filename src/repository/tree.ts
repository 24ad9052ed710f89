import { CairnError } from '../errors.js';
import { nodeToJSON, type Node } from '../fs/node.js';
import { goUnquoteBytes, isUtf8 } from '../fs/goquote.js';

/** A directory's listing: nodes sorted by name in byte order, as restic stores them. */
export interface Tree {
  nodes: Node[];
}

/** restic's tree encoding: `{"nodes":[…]}` and a newline; the blob id is the hash of these bytes. */
export function encodeTree(nodes: readonly Node[]): Buffer {
  const parts = nodes.map(nodeToJSON);
  return Buffer.from(`{"nodes":[${parts.join(',')}]}\n`, 'utf8');
}

export function decodeTree(plain: Buffer, id: string): Tree {
  let t: Tree;
  try {
    t = JSON.parse(plain.toString('utf8')) as Tree;
  } catch (err) {
    throw new CairnError('INTEGRITY', `tree ${id} is not valid JSON: ${(err as Error).message}`);
  }
  if (!t || !Array.isArray(t.nodes)) throw new CairnError('INTEGRITY', `tree ${id} has no nodes list`);
  for (const n of t.nodes) {
    if (typeof n?.name !== 'string') throw new CairnError('INTEGRITY', `tree ${id} has a node without a name`);
    // Most names have no escapes: their bytes are their UTF-8, which the string already is.
    if (!n.name.includes('\\') && n.name.isWellFormed()) continue;
    const raw = goUnquoteBytes(n.name);
    n.name = raw.toString('utf8');
    if (!isUtf8(raw)) n.nameRaw = raw;
  }
  return t;
}
