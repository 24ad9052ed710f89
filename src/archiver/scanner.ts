import fs from 'node:fs/promises';
import path from 'node:path';
import { Limiter } from '../util/limit.js';
import { sourceInTaggedFolder, taggedFolderKeeps, type ExcludeLists } from './excludes.js';

export interface Totals {
  files: number;
  bytes: number;
}

/**
 * Counts the files and bytes a backup will see, beside the backup itself, so progress can show a
 * percentage and an ETA (as restic's scanner does). It uses the thread pool's asynchronous calls,
 * which the archiver's synchronous walk leaves idle, and gives up quietly on unreadable folders.
 */
export async function scanTotals(paths: string[], excluded: ((p: string) => boolean) | undefined, onUpdate: (t: Totals) => void, signal?: AbortSignal, lists?: ExcludeLists): Promise<Totals> {
  const totals: Totals = { files: 0, bytes: 0 };
  const slots = new Limiter(8);
  const tags = lists?.tags ?? [];
  const limit = lists?.largerThan;
  const visit = async (p: string): Promise<void> => {
    if (signal?.aborted || excluded?.(p)) return;
    const st = await slots.run(() => fs.lstat(p)).catch(() => null);
    if (!st) return;
    if (limit !== undefined && !st.isDirectory() && st.size > limit) return;
    if (st.isFile()) {
      totals.files++;
      totals.bytes += st.size;
      return;
    }
    if (!st.isDirectory()) return;
    let names = await slots.run(() => fs.readdir(p)).catch(() => [] as string[]);
    const keeps = tags.length > 0 ? taggedFolderKeeps(p, names, tags) : null;
    if (keeps) names = names.filter((n) => keeps.has(n));
    await Promise.all(names.map((n) => visit(path.join(p, n))));
    onUpdate(totals);
  };
  await Promise.all(paths.filter((p) => !sourceInTaggedFolder(p, tags)).map(visit));
  onUpdate(totals);
  return totals;
}
