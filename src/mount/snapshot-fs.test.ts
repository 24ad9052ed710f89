import { describe, expect, it } from 'vitest';
import { GoMode } from '../fs/filemode.js';
import type { Node } from '../fs/node.js';
import { SnapshotFs, snapshotDirName } from './snapshot-fs.js';

describe('snapshot folder names', () => {
  it('are restic\'s default template: seconds and the zone the snapshot was taken in', () => {
    expect(snapshotDirName('2026-12-03T08:02:41.123456789Z')).toBe('2026-12-03T08:02:41Z');
    expect(snapshotDirName('2026-12-03T09:02:41.5+01:00')).toBe('2026-12-03T09:02:41+01:00');
    expect(snapshotDirName('2026-12-03T03:02:41-05:00')).toBe('2026-12-03T03:02:41-05:00');
    expect(snapshotDirName('2026-12-03T08:02:41+00:00')).toBe('2026-12-03T08:02:41Z');
  });
});

describe('modes', () => {
  const node = (type: Node['type'], mode?: number): Node => ({ name: 'n', type, mode, mtime: '', atime: '', ctime: '', uid: 0, gid: 0, content: null });
  it('carry the node\'s type and permission bits, setuid, setgid and sticky included', () => {
    expect(SnapshotFs.mode({ kind: 'node', node: node('file', 0o640) })).toBe(0o100640);
    expect(SnapshotFs.mode({ kind: 'node', node: node('file', 0o755 + GoMode.Setuid) })).toBe(0o104755);
    expect(SnapshotFs.mode({ kind: 'node', node: node('dir', GoMode.Dir + GoMode.Sticky + 0o777) })).toBe(0o041777);
    expect(SnapshotFs.mode({ kind: 'node', node: node('symlink', GoMode.Symlink + 0o777) })).toBe(0o120777);
    expect(SnapshotFs.mode({ kind: 'node', node: node('chardev', GoMode.Device + GoMode.CharDevice + 0o666) })).toBe(0o020666);
    expect(SnapshotFs.mode({ kind: 'node', node: node('fifo', GoMode.NamedPipe + 0o644) })).toBe(0o010644);
    expect(SnapshotFs.mode({ kind: 'virtual-dir', children: async () => new Map(), time: 0n })).toBe(0o040555);
  });
});
