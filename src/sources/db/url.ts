import path from 'node:path';
import { CairnError } from '../../errors.js';

export type DbEngineName = 'mysql' | 'postgres' | 'sqlite';

/** Where a database lives and how to log in; parsed from a `--db`/`--to` URL or a db-dump config entry. */
export interface DbLocation {
  engine: DbEngineName;
  /** The database name (for SQLite: the file name without its extension). */
  database: string;
  host: string;
  port: number;
  user: string;
  password?: string;
  /** PostgreSQL dump format: `plain` SQL (default) or pg_dump's `custom` archive. */
  format: 'plain' | 'custom';
  /** SQLite: the database file. */
  file?: string;
}

const DEFAULT_PORT = { mysql: 3306, postgres: 5432 } as const;
const DEFAULT_USER = { mysql: 'root', postgres: 'postgres' } as const;

/**
 * A database name becomes a file name in the snapshot and an argument to the dump tools, so it must
 * be one path segment that no tool can mistake for an option.
 */
export function checkDatabaseName(name: string): string {
  if (!name || name.length > 128 || name.startsWith('-') || name === '.' || name === '..' || /[/\\\0\s'"`=]/.test(name)) {
    throw new CairnError('BAD_INPUT', `invalid database name ${JSON.stringify(name)}: one word without slashes, quotes or spaces, not starting with "-"`);
  }
  return name;
}

/**
 * Parses `mysql://user[:pass]@host[:port]/name` (also `mariadb://`), `postgres://…/name[?format=custom]`
 * (also `postgresql://`) and `sqlite:/path/file.db`. With `needName: false` the database name may be
 * missing (a server URL, as `db-verify --scratch` takes).
 */
export function parseDbUrl(raw: string, opts: { needName?: boolean } = {}): DbLocation {
  const needName = opts.needName ?? true;
  if (raw.startsWith('sqlite:')) {
    const file = raw.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (!file) throw new CairnError('BAD_INPUT', `invalid SQLite URL ${JSON.stringify(raw)}: write sqlite:/path/to/file.db`);
    const abs = path.resolve(file);
    const database = path.basename(abs).replace(/\.(db|sqlite3?)$/i, '') || path.basename(abs);
    return { engine: 'sqlite', database: checkDatabaseName(database), host: '', port: 0, user: '', format: 'plain', file: abs };
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CairnError('BAD_INPUT', `invalid database URL ${JSON.stringify(redactUrl(raw))}: write mysql://user@host:port/name, postgres://user@host:port/name or sqlite:/path/file.db`);
  }
  const scheme = url.protocol.slice(0, -1);
  const engine = scheme === 'mysql' || scheme === 'mariadb' ? 'mysql' : scheme === 'postgres' || scheme === 'postgresql' ? 'postgres' : null;
  if (!engine) throw new CairnError('BAD_INPUT', `unknown database URL scheme ${JSON.stringify(scheme)}: use mysql://, mariadb://, postgres://, postgresql:// or sqlite:`);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (needName && !name) throw new CairnError('BAD_INPUT', `database URL ${redactUrl(raw)} names no database: add /name`);
  const format = url.searchParams.get('format') ?? 'plain';
  if (format !== 'plain' && format !== 'custom') throw new CairnError('BAD_INPUT', `invalid format ${JSON.stringify(format)}: use plain or custom`);
  if (format === 'custom' && engine !== 'postgres') throw new CairnError('BAD_INPUT', 'format=custom exists for PostgreSQL only');
  return {
    engine,
    database: name ? checkDatabaseName(name) : '',
    host: url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: url.port ? Number(url.port) : DEFAULT_PORT[engine],
    user: url.username ? decodeURIComponent(url.username) : DEFAULT_USER[engine],
    password: url.password ? decodeURIComponent(url.password) : undefined,
    format,
  };
}

/** A URL with its password replaced by `***`, for messages and process titles. */
export function redactUrl(raw: string): string {
  return raw.replace(/^([a-z]+:\/\/[^/:@]*):[^@/]*@/i, '$1:***@');
}

/** How a location is named in messages: never with a password. */
export function describeLocation(loc: DbLocation): string {
  if (loc.engine === 'sqlite') return `sqlite:${loc.file}`;
  return `${loc.engine}://${loc.user}@${loc.host}:${loc.port}/${loc.database}`;
}
