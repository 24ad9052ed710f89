import { parseAge, type Keep } from './spec.js';

/** The timestamp in archive names and trash folders: UTC to the second, sortable as text, no `:` (which Windows and some tools reject). */
export function formatTimestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/:/g, '-');
}

/** The part of a regular expression that matches a timestamp written by formatTimestamp. */
export const TIMESTAMP_SOURCE = '\\d{4}-\\d{2}-\\d{2}T\\d{2}-\\d{2}-\\d{2}Z';

export function parseTimestamp(ts: string): Date {
  return new Date(ts.replace(/T(\d{2})-(\d{2})-(\d{2})Z$/, 'T$1:$2:$3Z'));
}

/** A copy that retention may remove, with the time in its name. */
export interface Dated {
  name: string;
  time: Date;
}

/**
 * Which copies retention removes. It keeps the union of: copies younger than `keep.age`, and the newest
 * `keep.count` copies; and always the ones in `protect` (the copy a run just wrote). Without `age` and `count`
 * everything is kept. Times are those in the names, so moving or touching files does not change what is kept.
 */
export function expired(items: Dated[], keep: Keep | undefined, now: Date, protect: ReadonlySet<string>): Dated[] {
  if (keep === undefined || (keep.age === undefined && keep.count === undefined)) return [];
  const newestFirst = [...items].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.name < b.name ? 1 : -1));
  const maxAge = keep.age === undefined ? undefined : parseAge(keep.age);
  return newestFirst.filter((item, i) => {
    if (protect.has(item.name)) return false;
    if (keep.count !== undefined && i < keep.count) return false;
    if (maxAge !== undefined && now.getTime() - item.time.getTime() < maxAge) return false;
    return true;
  });
}
