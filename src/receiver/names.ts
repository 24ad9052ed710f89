/**
 * What the receiver accepts as names. A database name is `[A-Za-z0-9_]{1,64}`; an archive is named
 * `{engine}-{YYYY-MM-DD-HH-mm-ss}-{database_name}-{uuid}.sql.zip` (engine `mysql` or `postgres`;
 * `.dump.zip` for PostgreSQL's custom format), exactly as `cairn db-dump` names them. Neither can
 * hold a path separator or a dot-dot, so no name from a request can leave the storage folder.
 */
export const DATABASE_NAME = /^[A-Za-z0-9_]{1,64}$/;

const ARCHIVE_NAME = /^(mysql|postgres)-(\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})-([A-Za-z0-9_]{1,64})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(sql|dump)\.zip$/i;

export const BACKUP_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface ArchiveName {
  engine: string;
  dumpedAt: string;
  databaseName: string;
  uuid: string;
}

/** Parses an archive's file name; null when it does not follow the pattern. */
export function parseArchiveName(fileName: string): ArchiveName | null {
  const m = ARCHIVE_NAME.exec(fileName);
  if (!m) return null;
  if (m[1].toLowerCase() === 'mysql' && m[5].toLowerCase() === 'dump') return null;
  return { engine: m[1].toLowerCase(), dumpedAt: m[2], databaseName: m[3], uuid: m[4] };
}

/** `YYYY-MM-DD HH:mm:ss` in UTC, as the receiver's responses write times. */
export function formatTimestamp(d: Date): string {
  return d.toISOString().slice(0, 19).replace('T', ' ');
}
