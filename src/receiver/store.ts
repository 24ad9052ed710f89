/**
 * The receiver's history of received archives, in the catalog (SQLite by default, MySQL/MariaDB or
 * PostgreSQL by URL). One row per stored file; the file itself lives in the storage folder.
 */
import type { Kysely, Migration } from 'kysely';
import { migrateComponent, openCatalogDatabase, type CatalogDatabase } from '../catalog/database.js';

export interface BackupRow {
  id: string;
  database_name: string;
  file_name: string;
  /** Upload time, `YYYY-MM-DD HH:mm:ss` UTC. */
  timestamp: string;
  /** Upload time in milliseconds since the epoch, for ordering. */
  received_ms: number;
  size: number;
  sha256: string;
}

interface ReceiverTables {
  receiver_backups: BackupRow;
}

const migrations: Record<string, Migration> = {
  '001_receiver_backups': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('receiver_backups')
        .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('database_name', 'varchar(64)', (c) => c.notNull())
        .addColumn('file_name', 'varchar(255)', (c) => c.notNull().unique())
        .addColumn('timestamp', 'varchar(19)', (c) => c.notNull())
        .addColumn('received_ms', 'bigint', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'char(64)', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('receiver_backups_by_database').on('receiver_backups').columns(['database_name', 'received_ms']).execute();
    },
  },
};

export class ReceiverStore {
  readonly #cat: CatalogDatabase<ReceiverTables>;

  private constructor(cat: CatalogDatabase<ReceiverTables>) {
    this.#cat = cat;
  }

  static async open(url: string): Promise<ReceiverStore> {
    const cat = await openCatalogDatabase<ReceiverTables>(url);
    try {
      await migrateComponent(cat.db, 'receiver', migrations);
    } catch (err) {
      await cat.close();
      throw err;
    }
    return new ReceiverStore(cat);
  }

  get safeUrl(): string {
    return this.#cat.safeUrl;
  }

  async add(row: BackupRow): Promise<void> {
    await this.#cat.db.insertInto('receiver_backups').values(row).execute();
  }

  async byFileName(fileName: string): Promise<BackupRow | undefined> {
    return fix(await this.#cat.db.selectFrom('receiver_backups').selectAll().where('file_name', '=', fileName).executeTakeFirst());
  }

  async byId(id: string): Promise<BackupRow | undefined> {
    return fix(await this.#cat.db.selectFrom('receiver_backups').selectAll().where('id', '=', id).executeTakeFirst());
  }

  /** One database's backups, newest first. */
  async history(databaseName: string): Promise<BackupRow[]> {
    const rows = await this.#cat.db
      .selectFrom('receiver_backups')
      .selectAll()
      .where('database_name', '=', databaseName)
      .orderBy('received_ms', 'desc')
      .orderBy('file_name', 'desc')
      .execute();
    return rows.map((r) => fix(r)!);
  }

  /** The newest backup of every database, ordered by database name. */
  async latest(): Promise<BackupRow[]> {
    const newest = this.#cat.db
      .selectFrom('receiver_backups')
      .select(['database_name'])
      .select((eb) => eb.fn.max('received_ms').as('newest'))
      .groupBy('database_name')
      .as('n');
    const rows = await this.#cat.db
      .selectFrom('receiver_backups as b')
      .innerJoin(newest, (j) => j.onRef('n.database_name', '=', 'b.database_name').onRef('n.newest', '=', 'b.received_ms'))
      .selectAll('b')
      .orderBy('b.database_name')
      .orderBy('b.file_name', 'desc')
      .execute();
    const seen = new Set<string>();
    const out: BackupRow[] = [];
    for (const r of rows) {
      if (seen.has(r.database_name)) continue;
      seen.add(r.database_name);
      out.push(fix(r)!);
    }
    return out;
  }

  async remove(id: string): Promise<void> {
    await this.#cat.db.deleteFrom('receiver_backups').where('id', '=', id).execute();
  }

  close(): Promise<void> {
    return this.#cat.close();
  }
}

/** MySQL and PostgreSQL hand bigints back as strings. */
function fix(r: BackupRow | undefined): BackupRow | undefined {
  if (!r) return r;
  return { ...r, received_ms: Number(r.received_ms), size: Number(r.size), sha256: r.sha256.trim() };
}
