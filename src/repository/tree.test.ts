import { describe, expect, it } from 'vitest';
import { decodeTree, encodeTree } from './tree.js';
import { nodeToJSON, type Node } from '../fs/node.js';

const base = { type: 'file', mtime: '2026-01-02T03:04:05.5Z', atime: '2026-01-02T03:04:05.5Z', ctime: '2026-01-02T03:04:05.5Z', uid: 0, gid: 0, content: [] } as const;

function treeOf(names: string[]): Buffer {
  return Buffer.from(`{"nodes":[${names.map((n) => JSON.stringify({ ...base, name: n })).join(',')}]}\n`);
}

describe('decodeTree names', () => {
  it('keeps plain and non-ASCII names as they are', () => {
    const t = decodeTree(treeOf(['a b', 'ünï', 'x\ny', '😀']), 'id');
    expect(t.nodes.map((n) => n.name)).toEqual(['a b', 'ünï', 'x\ny', '😀']);
    expect(t.nodes.every((n) => n.nameRaw === undefined)).toBe(true);
  });

  it('reads Go escapes into the raw bytes, and a lone surrogate as U+FFFD', () => {
    const t = decodeTree(treeOf(['a\\xffb', 'back\\\\slash', '\ud800x']), 'id');
    expect(t.nodes[0].nameRaw).toEqual(Buffer.from([0x61, 0xff, 0x62]));
    expect(t.nodes[0].name).toBe('a\uFFFDb');
    expect(t.nodes[1].name).toBe('back\\slash');
    expect(t.nodes[1].nameRaw).toBeUndefined();
    expect(t.nodes[2].name).toBe('\uFFFDx');
    expect(t.nodes[2].nameRaw).toBeUndefined();
  });

  it('round-trips names through encodeTree', () => {
    const nodes = [{ ...base, name: 'plain' }, { ...base, name: 'a\\b' }, { ...base, name: 'r', nameRaw: Buffer.from([0x72, 0xfe]) }] as unknown as Node[];
    const back = decodeTree(encodeTree(nodes), 'id').nodes;
    expect(back.map((n) => [n.name, n.nameRaw])).toEqual([['plain', undefined], ['a\\b', undefined], ['r\uFFFD', Buffer.from([0x72, 0xfe])]]);
  });
});

describe('encodeTree', () => {
  const joined = (nodes: Node[]): Buffer => Buffer.from(`{"nodes":[${nodes.map(nodeToJSON).join(',')}]}\n`, 'utf8');

  it('writes the bytes restic hashes: an empty folder', () => {
    expect(encodeTree([]).toString()).toBe('{"nodes":[]}\n');
  });

  it('writes each node as nodeToJSON does, however long the names and attributes (the buffer grows past its guess)', () => {
    const nodes = Array.from({ length: 3000 }, (_, i) => ({
      ...base,
      name: i % 3 === 0 ? `${'ü'.repeat(250)}${i}` : i % 3 === 1 ? `日本語${'語'.repeat(160)}${i}` : `f${i}`,
      ...(i % 500 === 0 ? { extended_attributes: [{ name: 'user.big', value: Buffer.alloc(6000, i % 251).toString('base64') }] } : {}),
    })) as unknown as Node[];
    const want = joined(nodes);
    expect(want.length).toBeGreaterThan(nodes.length * 400);
    expect(encodeTree(nodes).equals(want)).toBe(true);
  });
});
