import { randomUUID } from 'node:crypto';

/** `YYYY-MM-DD-HH-mm-ss` in local time, as the file names of existing dump clients have it. */
export function dumpTimestamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
}

/** `mysql-{timestamp}-{database}-{uuid}.sql` (or `postgres-…`); the archive adds `.zip`. */
export function dumpFileName(engine: 'mysql' | 'postgres', database: string, at: Date, uuid: string = randomUUID()): string {
  return `${engine}-${dumpTimestamp(at)}-${database}-${uuid}.sql`;
}

/** What a receiver accepts for `database`: the dump file name pattern plus `.zip`. */
export function archiveNamePattern(database: string): RegExp {
  const escaped = database.replace(/[^A-Za-z0-9_]/g, '\\$&');
  return new RegExp(`^(mysql|postgres)-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-${escaped}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\\.sql\\.zip$`);
}
