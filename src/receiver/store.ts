/**
 * The receiver's store: archives as files in one storage folder, under the client's own file
 * names, and their history (id, database, file name, size, SHA-256, time received) in the catalog.
 *
 * A file is stored before its row is written and removed before its row is deleted, so a row
 * always names a file that is (or was a moment ago) complete on disk.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { type ColumnType, type Generated, type Kysely, type Migration } from 'kysely';
import { CairnError } from '../errors.js';
import { migrateComponent, openCatalogDatabase, type CatalogDatabase, type CatalogDialect } from '../catalog/database.js';
import { formatTimestamp } from './names.js';

interface BackupsTable {
  id: Generated<number>;
  database_name: string;
  file_name: string;
  // PostgreSQL returns bigint columns as strings; rows are converted with Number().
  size: ColumnType<number | string, number, never>;
  sha256: string;
  received_at: string;
}

export interface ReceiverTables {
  receiver_backups: BackupsTable;
}

/** One stored archive, as the catalog records it. */
export interface BackupRecord {
  id: number;
  database_name: string;
  file_name: string;
  size: number;
  sha256: string;
  /** When the upload completed, `YYYY-MM-DD HH:mm:ss` UTC. */
  timestamp: string;
}

/** The file name a SQLite catalog gets inside the storage folder when no catalog is given. */
export const DEFAULT_CATALOG_FILE = 'receiver.db';

function migrations(dialect: CatalogDialect): Record<string, Migration> {
  return {
    '001_create_receiver_backups': {
      async up(db: Kysely<unknown>) {
        await db.schema
          .createTable('receiver_backups')
          .addColumn('id', dialect === 'postgres' ? 'bigserial' : dialect === 'mysql' ? 'bigint' : 'integer', (c) =>
            dialect === 'postgres' ? c.primaryKey() : c.primaryKey().autoIncrement(),
          )
          .addColumn('database_name', 'varchar(64)', (c) => c.notNull())
          .addColumn('file_name', 'varchar(255)', (c) => c.notNull().unique())
          .addColumn('size', 'bigint', (c) => c.notNull())
          .addColumn('sha256', 'char(64)', (c) => c.notNull())
          .addColumn('received_at', 'char(19)', (c) => c.notNull())
          .execute();
        await db.schema.createIndex('receiver_backups_database').on('receiver_backups').columns(['database_name', 'id']).execute();
      },
    },
  };
}

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; errno?: number };
  return e.code === 'SQLITE_CONSTRAINT_UNIQUE' || e.code === 'ER_DUP_ENTRY' || e.code === '23505';
}

function toRecord(row: { id: number | string; database_name: string; file_name: string; size: number | string; sha256: string; received_at: string }): BackupRecord {
  return {
    id: Number(row.id),
    database_name: row.database_name,
    file_name: row.file_name,
    size: Number(row.size),
    sha256: row.sha256,
    timestamp: row.received_at,
  };
}

export interface ReceiverStoreOptions {
  /** The storage folder; created if missing. */
  storage: string;
  /** Catalog URL (see `openCatalogDatabase`); by default SQLite in `storage/receiver.db`. */
  catalog?: string;
}

export class ReceiverStore {
  /** Absolute path of the storage folder. */
  readonly storage: string;
  /** The catalog's URL with any password masked. */
  readonly catalogUrl: string;
  readonly #catalog: CatalogDatabase<ReceiverTables>;

  private constructor(storage: string, catalog: CatalogDatabase<ReceiverTables>) {
    this.storage = storage;
    this.#catalog = catalog;
    this.catalogUrl = catalog.safeUrl;
  }

  /** Creates the storage folder if needed, opens the catalog and brings its schema up to date. */
  static async open(opts: ReceiverStoreOptions): Promise<ReceiverStore> {
    const storage = path.resolve(opts.storage);
    await fs.mkdir(storage, { recursive: true });
    const catalog = await openCatalogDatabase<ReceiverTables>(opts.catalog ?? `sqlite:${path.join(storage, DEFAULT_CATALOG_FILE)}`);
    try {
      await migrateComponent(catalog.db, 'receiver', migrations(catalog.dialect));
    } catch (err) {
      await catalog.close();
      throw err;
    }
    return new ReceiverStore(storage, catalog);
  }

  /** Where a checked archive name lives in the storage folder. */
  pathOf(fileName: string): string {
    const p = path.join(this.storage, fileName);
    if (path.dirname(p) !== this.storage) throw new CairnError('BAD_INPUT', `invalid file name ${JSON.stringify(fileName)}`);
    return p;
  }

  /** The newest archive of every database, by database name. */
  async latest(): Promise<BackupRecord[]> {
    const db = this.#catalog.db;
    const rows = await db
      .selectFrom('receiver_backups as b')
      .innerJoin(
        (eb) => eb.selectFrom('receiver_backups').select(['database_name', (e) => e.fn.max('id').as('max_id')]).groupBy('database_name').as('m'),
        (join) => join.onRef('b.id', '=', 'm.max_id'),
      )
      .selectAll('b')
      .orderBy('b.database_name')
      .execute();
    return rows.map(toRecord);
  }

  /** Every archive of one database, newest first. */
  async history(database: string): Promise<BackupRecord[]> {
    const rows = await this.#catalog.db.selectFrom('receiver_backups').selectAll().where('database_name', '=', database).orderBy('id', 'desc').execute();
    return rows.map(toRecord);
  }

  async find(id: number): Promise<BackupRecord | undefined> {
    const row = await this.#catalog.db.selectFrom('receiver_backups').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toRecord(row);
  }

  /** Whether a file of that name is stored or recorded. */
  async has(fileName: string): Promise<boolean> {
    const row = await this.#catalog.db.selectFrom('receiver_backups').select('id').where('file_name', '=', fileName).executeTakeFirst();
    if (row) return true;
    return fs.access(this.pathOf(fileName)).then(
      () => true,
      () => false,
    );
  }

  /**
   * Stores a complete, synced temporary file (in the storage folder) under `fileName` and records it.
   * The file is hard-linked into place, which fails when the name exists: of two uploads of one
   * name exactly one is stored, and the other gets CONFLICT. The temporary file stays for the
   * caller to remove.
   */
  async add(tempPath: string, entry: { database_name: string; file_name: string; size: number; sha256: string }): Promise<BackupRecord> {
    const target = this.pathOf(entry.file_name);
    try {
      await fs.link(tempPath, target);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw conflict(entry.file_name);
      throw err;
    }
    try {
      await syncFolder(this.storage);
      const timestamp = formatTimestamp(new Date());
      const values = { ...entry, received_at: timestamp };
      let id: number;
      if (this.#catalog.dialect === 'postgres') {
        const row = await this.#catalog.db.insertInto('receiver_backups').values(values).returning('id').executeTakeFirstOrThrow();
        id = Number(row.id);
      } else {
        const r = await this.#catalog.db.insertInto('receiver_backups').values(values).executeTakeFirstOrThrow();
        id = Number(r.insertId);
      }
      return { id, ...entry, timestamp };
    } catch (err) {
      await fs.rm(target, { force: true });
      if (isUniqueViolation(err)) throw conflict(entry.file_name);
      throw err;
    }
  }

  /**
   * Keeps the newest `keep` archives of a database and deletes the others, file first, then row.
   * Returns what was deleted.
   */
  async retain(database: string, keep: number): Promise<BackupRecord[]> {
    const old = (await this.history(database)).slice(keep);
    for (const r of old) {
      await fs.rm(this.pathOf(r.file_name), { force: true });
      await this.#catalog.db.deleteFrom('receiver_backups').where('id', '=', r.id).execute();
    }
    return old;
  }

  async close(): Promise<void> {
    await this.#catalog.close();
  }
}

/** The refusal of a second upload of one file name. */
export function conflict(fileName: string): CairnError {
  return new CairnError('CONFLICT', `${fileName} is already stored: an archive is uploaded once, under a new name for each dump`);
}

/** Makes a new directory entry durable. */
export async function syncFolder(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
