import { describe, expect, it } from 'vitest';
import { nodeMeta } from '../fs/apply.js';
import type { Node } from '../fs/node.js';
import { RestorePlan } from './plan.js';

const node = (over: Partial<Node>): Node => ({
  name: 'n',
  type: 'file',
  mode: 0o644,
  mtime: '2024-02-03T04:05:06.123456789+01:00',
  atime: '2024-02-03T04:05:07.5Z',
  ctime: '2024-02-03T04:05:08Z',
  uid: 1000,
  gid: 100,
  content: [],
  ...over,
});

describe('the restore plan', () => {
  it("gives back each file's and folder's metadata as nodeMeta makes it, over thousands of nodes", () => {
    const plan = new RestorePlan();
    const nodes: Node[] = [];
    for (let k = 0; k < 5000; k++) {
      const n = node({ type: k % 3 ? 'file' : 'dir', mode: k % 7 ? (0o600 + k) | (k % 3 ? 0 : 0x8000_0000) : undefined, uid: k * 13, gid: 4_000_000_000 - k, mtime: `2024-02-03T04:05:06.${String(k).padStart(9, '0')}Z` });
      nodes.push(n);
      expect(plan.add(`/t/${k}`, n)).toBe(k);
    }
    expect(plan.count).toBe(5000);
    nodes.forEach((n, k) => {
      expect(plan.type(k)).toBe(n.type);
      expect(plan.dest[k]).toBe(`/t/${k}`);
      expect(plan.meta(k)).toEqual(nodeMeta(n));
    });
  });

  it('keeps what its columns cannot hold: extended attributes, odd times and ids, and the nodes of symlinks and special files', () => {
    const plan = new RestorePlan();
    const odd = [
      node({ extended_attributes: [{ name: 'user.a', value: 'Yg==' }] }),
      node({ type: 'dir', mtime: 'not a time' }),
      node({ uid: -1 }),
      node({ gid: 2 ** 40 }),
    ];
    const specials = [node({ type: 'symlink', linktarget: '../x' }), node({ type: 'fifo' }), node({ type: 'socket' }), node({ type: 'irregular' as Node['type'] })];
    for (const n of [...odd, ...specials]) plan.add(`/t/${n.type}`, n);
    odd.forEach((n, k) => expect(plan.meta(k)).toEqual(nodeMeta(n)));
    specials.forEach((n, k) => {
      expect(plan.meta(odd.length + k)).toBe(n);
      expect(plan.type(odd.length + k)).toBe(n.type);
    });
  });

  it('forgets a folder and what it held, and numbers what comes next after what is left', () => {
    const plan = new RestorePlan();
    plan.add('/t/a', node({}));
    const dir = plan.add('/t/d', node({ type: 'dir' }));
    plan.add('/t/d/l', node({ type: 'symlink', linktarget: 'a' }));
    const f = plan.add('/t/d/f', node({}));
    plan.linkTo.set(f, 0);
    plan.truncate(dir);
    expect(plan.count).toBe(1);
    expect(plan.dest).toEqual(['/t/a']);
    expect(plan.special.size).toBe(0);
    expect(plan.linkTo.size).toBe(0);
    const next = plan.add('/t/b', node({ type: 'dir', uid: 7 }));
    expect(next).toBe(1);
    expect(plan.meta(next)).toMatchObject({ type: 'dir', uid: 7 });
    expect(plan.blobs[next]).toBe(0);
    expect(plan.failed[next]).toBe(0);
  });
});
