import { CairnError } from '../errors.js';
import type { Repository } from './repository.js';
import type { Snapshot } from './snapshot.js';

export interface SnapshotFilter {
  hosts?: string[];
  tags?: string[];
  paths?: string[];
}

/** restic's filter: hosts match any; each --tag value is a comma-separated set that must all be present, any value may match; paths must all be present. */
export function matchesFilter(s: Snapshot, f: SnapshotFilter): boolean {
  if (f.hosts && f.hosts.length > 0 && !f.hosts.includes(s.hostname ?? '')) return false;
  if (f.tags && f.tags.length > 0) {
    const have = new Set(s.tags ?? []);
    const ok = f.tags.some((group) => group.split(',').filter(Boolean).every((t) => have.has(t)));
    if (!ok) return false;
  }
  if (f.paths && f.paths.length > 0 && !f.paths.every((p) => s.paths.includes(p))) return false;
  return true;
}

/** Resolves `latest`, a full id or a unique prefix to a snapshot; `latest` honours the filter. */
export async function findSnapshot(repo: Repository, ref: string, filter: SnapshotFilter = {}): Promise<Snapshot> {
  if (ref === 'latest') {
    const all = (await repo.listSnapshots()).filter((s) => matchesFilter(s, filter));
    if (all.length === 0) throw new CairnError('NOT_FOUND', 'no snapshot found (latest): the repository has no matching snapshots');
    return all[all.length - 1];
  }
  if (!/^[0-9a-f]{1,64}$/.test(ref)) throw new CairnError('BAD_INPUT', `invalid snapshot id ${JSON.stringify(ref)}: use an id, a unique prefix of one, or "latest"`);
  return repo.loadSnapshot(await repo.resolveId('snapshot', ref));
}

/** Splits restic's `SNAPSHOT:PATH` form. */
export function splitSnapshotRef(ref: string): { ref: string; subPath: string } {
  const i = ref.indexOf(':');
  if (i < 0) return { ref, subPath: '/' };
  const sub = ref.slice(i + 1) || '/';
  return { ref: ref.slice(0, i), subPath: sub.startsWith('/') ? sub : `/${sub}` };
}

/** The parent for a new backup, as restic picks it: the latest snapshot with the same host and the same set of paths. */
export async function findParent(repo: Repository, host: string, paths: string[]): Promise<Snapshot | null> {
  const want = [...paths].sort().join('\0');
  const all = await repo.listSnapshots(() => undefined);
  for (let i = all.length - 1; i >= 0; i--) {
    const s = all[i];
    if (s.hostname === host && [...s.paths].sort().join('\0') === want) return s;
  }
  return null;
}

/**
 * The snapshots a command works on, as restic's tag, rewrite and find take them: the named ones
 * (each once; `latest` honours the filter), or, when none is named, every snapshot the filter
 * matches, oldest first.
 */
export async function findSnapshots(repo: Repository, refs: readonly string[], filter: SnapshotFilter): Promise<Snapshot[]> {
  if (refs.length === 0) return (await repo.listSnapshots()).filter((s) => matchesFilter(s, filter));
  const found = await Promise.all(refs.map((r) => findSnapshot(repo, r, filter)));
  return [...new Map(found.map((s) => [s.id, s])).values()];
}
