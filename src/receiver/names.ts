/**
 * What the receiver accepts as names: database names, archive file names and ids. Every name that
 * reaches the file system has passed one of these checks, so none can hold a path separator or `..`.
 */
import { CairnError } from '../errors.js';

/** Largest archive accepted unless told otherwise: 2 GiB. */
export const DEFAULT_MAX_SIZE = 2 * 1024 ** 3;

const DATABASE_NAME = /^[A-Za-z0-9_]{1,64}$/;
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';
const ARCHIVE_NAME = new RegExp(`^(mysql|postgres)-(\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2})-([A-Za-z0-9_]{1,64})-${UUID}\\.sql\\.zip$`);
const ID = /^[1-9][0-9]{0,14}$/;

/** Shown with every refusal of a file name, so a client can see what is expected. */
export const ARCHIVE_NAME_FORM = 'mysql-YYYY-MM-DD-HH-mm-ss-{database_name}-{uuid}.sql.zip (or postgres-…)';

/** Returns the name when it is 1-64 ASCII letters, digits and underscores. */
export function checkDatabaseName(name: string): string {
  if (!DATABASE_NAME.test(name)) {
    throw new CairnError('BAD_INPUT', `invalid database name ${JSON.stringify(name)}: use 1-64 letters, digits and underscores`);
  }
  return name;
}

/** Returns the file name when it is an archive name for `database` (`mysql-…` or `postgres-…`). */
export function checkArchiveName(fileName: string, database: string): string {
  const m = ARCHIVE_NAME.exec(fileName);
  if (!m) throw new CairnError('BAD_INPUT', `invalid file name ${JSON.stringify(fileName)}: expected ${ARCHIVE_NAME_FORM}`);
  if (m[3] !== database) {
    throw new CairnError('BAD_INPUT', `file ${fileName} is an archive of database ${m[3]}, not of ${database}: upload it to /${m[3]}`);
  }
  return fileName;
}

/** Parses a backup id as given in a URL: a positive decimal integer. */
export function parseBackupId(id: string): number {
  if (!ID.test(id)) throw new CairnError('BAD_INPUT', `invalid backup id ${JSON.stringify(id)}: ids are positive integers`);
  return Number(id);
}

/** `YYYY-MM-DD HH:mm:ss` in UTC, the receiver's timestamp form. */
export function formatTimestamp(date: Date): string {
  return date.toISOString().slice(0, 19).replace('T', ' ');
}
