import { describe, expect, it } from 'vitest';
import { decodeFolders, FolderStore, readTreeFacts, TreeFactsWriter, type TreeFacts } from './tree-facts.js';

const times = { mtime: '2026-01-02T03:04:05.5Z', atime: '2026-01-02T03:04:05.5Z', ctime: '2026-01-02T03:04:05.5Z', uid: 0, gid: 0 };
const id = (c: string): string => c.repeat(64);

function tree(nodes: object[]): Buffer {
  return Buffer.from(`${JSON.stringify({ nodes: nodes.map((n) => ({ ...times, ...n })) })}\n`);
}

/** Every tree the bytes hold, with its facts as plain values (blob ids in hex). */
function read(bytes: Uint8Array): [string, { names: string[]; subtrees: string[]; blobs: string[] } | null][] {
  const out: [string, { names: string[]; subtrees: string[]; blobs: string[] } | null][] = [];
  readTreeFacts(bytes, (tree, f: TreeFacts | null) => {
    const blobs: string[] = [];
    if (f) for (let o = 0; o < f.blobs.length; o += 32) blobs.push(Buffer.from(f.blobs.subarray(o, o + 32)).toString('hex'));
    out.push([Buffer.from(tree).toString('hex'), f && { ...decodeFolders(f.folders, f.folderCount), blobs }]);
  });
  return out;
}

describe('tree facts', () => {
  it('carry each tree’s subfolders (name and subtree) and its files’ data blobs, tree after tree, and nothing of other nodes', () => {
    const w = new TreeFactsWriter();
    w.add(
      id('1'),
      tree([
        { name: 'a', type: 'dir', mode: 2147484141, subtree: id('a') },
        { name: 'empty', type: 'file', mode: 0o644, size: 0, content: [] },
        { name: 'f', type: 'file', mode: 0o644, size: 9, content: [id('b'), id('c'), id('b')] },
        { name: 'link', type: 'symlink', mode: 134218239, linktarget: 'f' },
        { name: 'nul', type: 'file', mode: 0o644, size: 0, content: null },
        { name: 'x\ny ünï 😀', type: 'dir', mode: 2147484141, subtree: id('d') },
        { name: 'raw\\xff', type: 'dir', mode: 2147484141, subtree: id('e') },
        { name: 'fifo', type: 'fifo', mode: 0o644 },
      ]),
    );
    w.add(id('2'), tree([]));
    w.add(id('3'), tree([{ name: 'g', type: 'file', mode: 0o644, size: 1, content: [id('f')] }]));
    expect(read(w.finish())).toEqual([
      [id('1'), { names: ['a', 'x\ny ünï 😀', 'raw\uFFFD'], subtrees: [id('a'), id('d'), id('e')], blobs: [id('b'), id('c'), id('b')] }],
      [id('2'), { names: [], subtrees: [], blobs: [] }],
      [id('3'), { names: [], subtrees: [], blobs: [id('f')] }],
    ]);
  });

  it('leave a tree the walk must look at itself to the walk (null): not JSON, no nodes, a folder without a subtree, ids that are not ids', () => {
    const w = new TreeFactsWriter();
    const odd = [
      Buffer.from('{"nodes":[{"name":"a"'),
      Buffer.from('{"other":[]}\n'),
      tree([{ name: 'd', type: 'dir', mode: 2147484141 }]),
      tree([{ name: 'd', type: 'dir', mode: 2147484141, subtree: 'abc' }]),
      tree([{ name: 'f', type: 'file', mode: 0o644, size: 1, content: [id('a'), 'ABC'] }]),
      tree([{ name: 'f', type: 'file', mode: 0o644, size: 1, content: [id('A')] }]),
      tree([{ name: 'f', type: 'file', mode: 0o644, size: 1, content: id('a') }]),
      tree([{ type: 'file', mode: 0o644, size: 1, content: [] }]),
    ];
    // Between sound trees, so that a tree left to the walk takes no bytes of its neighbours.
    w.add(id('0'), tree([{ name: 's', type: 'dir', mode: 2147484141, subtree: id('5') }]));
    odd.forEach((plain, i) => w.add(id(String(i + 1)), plain));
    w.add(id('9'), tree([{ name: 'g', type: 'file', mode: 0o644, size: 1, content: [id('6')] }]));
    expect(read(w.finish())).toEqual([
      [id('0'), { names: ['s'], subtrees: [id('5')], blobs: [] }],
      ...odd.map((_, i) => [id(String(i + 1)), null]),
      [id('9'), { names: [], subtrees: [], blobs: [id('6')] }],
    ]);
  });

  it('grow past their first buffer: a tree of thousands of files and folders', () => {
    const nodes: object[] = [];
    for (let i = 0; i < 3000; i++) nodes.push({ name: `d${i}`, type: 'dir', mode: 2147484141, subtree: i.toString(16).padStart(64, '0') });
    for (let i = 0; i < 3000; i++) nodes.push({ name: `f${i}`, type: 'file', mode: 0o644, size: 2, content: [i.toString(16).padStart(64, 'f'), id('0')] });
    const w = new TreeFactsWriter();
    w.add(id('1'), tree(nodes));
    w.add(id('2'), tree([]));
    const [[first, facts], [second]] = read(w.finish());
    expect(first).toBe(id('1'));
    expect(second).toBe(id('2'));
    expect(facts!.names).toEqual(nodes.slice(0, 3000).map((n) => (n as { name: string }).name));
    expect(facts!.subtrees).toEqual(nodes.slice(0, 3000).map((n) => (n as { subtree: string }).subtree));
    expect(facts!.blobs).toEqual(nodes.slice(3000).flatMap((n) => (n as { content: string[] }).content));
  });

  it('keep, by index slot, each tree’s subfolders until the walk takes them, once; the first copy of a tree stays', () => {
    const w = new TreeFactsWriter();
    w.add(id('1'), tree([{ name: 'a', type: 'dir', mode: 2147484141, subtree: id('a') }, { name: 'é b', type: 'dir', mode: 2147484141, subtree: id('b') }, { name: 'f', type: 'file', mode: 0o644, size: 1, content: [id('c')] }]));
    w.add(id('2'), tree([{ name: 'f', type: 'file', mode: 0o644, size: 1, content: [id('c')] }]));
    w.add(id('3'), Buffer.from('not JSON'));
    w.add(id('1'), tree([{ name: 'other', type: 'dir', mode: 2147484141, subtree: id('d') }]));
    const store = new FolderStore(8);
    const slots = new Map([[id('1'), 5], [id('2'), 0], [id('3'), 7]]);
    readTreeFacts(w.finish(), (t, f) => {
      if (f) store.add(slots.get(Buffer.from(t).toString('hex'))!, f);
    });
    expect(store.take(5)).toEqual({ names: ['a', 'é b'], subtrees: [id('a'), id('b')] });
    expect(store.take(5)).toBeNull();
    expect(store.take(0)).toEqual({ names: [], subtrees: [] });
    expect(store.take(0)).toBeNull();
    expect(store.take(7)).toBeNull();
    expect(store.take(1)).toBeNull();
  });

  it('grow their store past its first buffer', () => {
    const store = new FolderStore(2000);
    const names = (t: number): string[] => Array.from({ length: 20 }, (_, i) => `folder ${t}-${i}`);
    for (let t = 0; t < 2000; t++) {
      const w = new TreeFactsWriter();
      w.add(id('1'), tree(names(t).map((name, i) => ({ name, type: 'dir', mode: 2147484141, subtree: (t * 100 + i).toString(16).padStart(64, '0') }))));
      readTreeFacts(w.finish(), (_t, f) => store.add(t, f!));
    }
    for (const t of [0, 999, 1999]) {
      expect(store.take(t)).toEqual({ names: names(t), subtrees: names(t).map((_, i) => (t * 100 + i).toString(16).padStart(64, '0')) });
    }
  });

  it('are empty for a pack without trees', () => {
    expect(new TreeFactsWriter().finish()).toHaveLength(0);
    expect(read(new Uint8Array(0))).toEqual([]);
  });
});
