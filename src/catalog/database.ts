/**
 * The catalog's database connection: SQLite (embedded default), MySQL/MariaDB or PostgreSQL, chosen by URL,
 * behind one Kysely instance. Components (the service, the receiver) keep their own migration lists and
 * their own migration tables, so each can evolve its schema without knowing about the others.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  Kysely,
  Migrator,
  MysqlDialect,
  PostgresDialect,
  SqliteDialect,
  type Migration,
  type MigrationProvider,
} from 'kysely';
import { CairnError } from '../errors.js';

export type CatalogDialect = 'sqlite' | 'mysql' | 'postgres';

export interface CatalogDatabase<DB> {
  db: Kysely<DB>;
  dialect: CatalogDialect;
  /** The URL with any password masked; safe for logs and messages. */
  safeUrl: string;
  close(): Promise<void>;
}

/** A URL with its password replaced by `***`. */
export function maskUrl(url: string): string {
  return url.replace(/^([a-z0-9+.-]+:\/\/[^:/@]*):[^@]*@/i, '$1:***@');
}

/**
 * Parses a catalog location: `sqlite:PATH`, `sqlite::memory:`, a plain path (SQLite),
 * `mysql://` / `mariadb://` or `postgres://` / `postgresql://` URLs.
 */
export function parseCatalogUrl(url: string): { dialect: CatalogDialect; target: string } {
  if (/^(mysql|mariadb):\/\//i.test(url)) return { dialect: 'mysql', target: url.replace(/^mariadb:/i, 'mysql:') };
  if (/^postgres(ql)?:\/\//i.test(url)) return { dialect: 'postgres', target: url };
  if (/^sqlite:/i.test(url)) {
    const rest = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (rest === '') throw new CairnError('BAD_INPUT', 'catalog URL "sqlite:" names no file; write sqlite:/path/to/catalog.db');
    return { dialect: 'sqlite', target: rest };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new CairnError('BAD_INPUT', `unsupported catalog URL ${maskUrl(url)}: use sqlite:PATH, mysql://… or postgres://…`);
  }
  if (url === '') throw new CairnError('BAD_INPUT', 'empty catalog location');
  return { dialect: 'sqlite', target: url };
}

/** Opens a catalog database and checks that it answers. */
export async function openCatalogDatabase<DB>(url: string): Promise<CatalogDatabase<DB>> {
  const { dialect, target } = parseCatalogUrl(url);
  const safeUrl = maskUrl(url);
  let db: Kysely<DB>;
  if (dialect === 'sqlite') {
    const { default: Sqlite } = await import('better-sqlite3');
    if (target !== ':memory:') fs.mkdirSync(path.dirname(path.resolve(target)), { recursive: true });
    let handle;
    try {
      handle = new Sqlite(target);
    } catch (err) {
      throw new CairnError('BACKEND_UNAVAILABLE', `cannot open SQLite catalog ${target}: ${(err as Error).message}`, { cause: err });
    }
    handle.pragma('journal_mode = WAL');
    handle.pragma('busy_timeout = 5000');
    handle.pragma('foreign_keys = ON');
    db = new Kysely<DB>({ dialect: new SqliteDialect({ database: handle }) });
  } else if (dialect === 'mysql') {
    const { createPool } = await import('mysql2');
    const pool = createPool({ uri: target, connectionLimit: 10, charset: 'utf8mb4', dateStrings: true, supportBigNumbers: true, bigNumberStrings: false });
    db = new Kysely<DB>({ dialect: new MysqlDialect({ pool }) });
  } else {
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({ connectionString: target, max: 10 });
    // A dropped connection must not crash the process; the next query reports it.
    pool.on('error', () => undefined);
    db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  }
  try {
    await db.selectNoFrom((eb) => eb.val(1).as('one')).execute();
  } catch (err) {
    await db.destroy().catch(() => undefined);
    const msg = String((err as Error).message ?? err).split(target).join(safeUrl);
    throw new CairnError('BACKEND_UNAVAILABLE', `cannot reach catalog ${safeUrl}: ${msg}`, { cause: err });
  }
  return { db, dialect, safeUrl, close: () => db.destroy() };
}

class StaticProvider implements MigrationProvider {
  constructor(private readonly migrations: Record<string, Migration>) {}
  getMigrations(): Promise<Record<string, Migration>> {
    return Promise.resolve(this.migrations);
  }
}

/**
 * Brings one component's schema up to date. Migration names sort in the order they run
 * (use `001_create_x`, `002_…`); each component has its own bookkeeping tables.
 */
export async function migrateComponent<DB>(db: Kysely<DB>, component: string, migrations: Record<string, Migration>): Promise<void> {
  if (!/^[a-z][a-z0-9_]*$/.test(component)) throw new CairnError('INTERNAL', `bad component name ${component}`);
  const migrator = new Migrator({
    db,
    provider: new StaticProvider(migrations),
    migrationTableName: `cairn_${component}_migrations`,
    migrationLockTableName: `cairn_${component}_migration_lock`,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    throw new CairnError('INTERNAL', `catalog migration ${failed ?? ''} for ${component} failed: ${(error as Error).message ?? String(error)}`, { cause: error });
  }
}
