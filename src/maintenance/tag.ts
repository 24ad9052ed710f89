import { CairnError } from '../errors.js';
import type { Id } from '../repository/id.js';
import type { Repository } from '../repository/repository.js';
import type { Snapshot } from '../repository/snapshot.js';

/** What `tag` does to each snapshot: replace its tags (`set`, which may be empty: no tags), or add and remove some. */
export interface TagChange {
  set?: string[];
  add?: string[];
  remove?: string[];
}

/** Tag flags as restic takes them: repeatable, each a comma-separated list; blanks around and empty tags are dropped. */
export function flattenTags(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',')).map((t) => t.trim()).filter((t) => t !== '');
}

/** Refuses what restic refuses: `set` beside `add`/`remove`, or no change at all. */
export function checkTagChange(c: TagChange): void {
  const set = c.set !== undefined;
  const addOrRemove = (c.add?.length ?? 0) > 0 || (c.remove?.length ?? 0) > 0;
  if (set && addOrRemove) throw new CairnError('BAD_INPUT', '--set and --add/--remove cannot be given at the same time');
  if (!set && !addOrRemove) throw new CairnError('BAD_INPUT', 'nothing to do: give --set, --add or --remove');
}

/**
 * The snapshot's tags after the change, or null when it leaves them as they are. As restic: `set`
 * always rewrites, `add` appends tags the snapshot lacks, in order, and `remove` drops every copy
 * of a tag.
 */
export function changedTags(s: Snapshot, c: TagChange): string[] | null {
  if (c.set !== undefined) return [...c.set];
  const tags = [...(s.tags ?? [])];
  let changed = false;
  for (const t of c.add ?? []) {
    if (tags.includes(t)) continue;
    tags.push(t);
    changed = true;
  }
  const remove = new Set(c.remove ?? []);
  const kept = tags.filter((t) => !remove.has(t));
  return changed || kept.length !== tags.length ? kept : null;
}

/**
 * Rewrites a snapshot with new tags: the new snapshot file names the first of the line in
 * `original` (kept over later changes), and is saved before the old file is removed, so a crash in
 * between leaves two copies rather than none. Returns the new snapshot's id.
 */
export async function retagSnapshot(repo: Repository, s: Snapshot, tags: string[]): Promise<Id> {
  const { id, ...rest } = s;
  const newId = await repo.saveSnapshot({ ...rest, tags, original: s.original ?? id });
  await repo.backend.remove({ type: 'snapshot', name: id });
  return newId;
}
