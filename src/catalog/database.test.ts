import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { sql } from 'kysely';
import { maskUrl, migrateComponent, openCatalogDatabase, parseCatalogUrl } from './database.js';
import { tempDir } from '../../test/support/tools.js';
import { HAVE_MARIADB, HAVE_POSTGRES, freshMysqlDatabase, freshPostgresDatabase, type FreshDatabase } from '../../test/support/databases.js';

interface DB {
  things: { id: number; name: string };
}

const migrations = {
  '001_things': {
    async up(db: import('kysely').Kysely<unknown>) {
      await db.schema.createTable('things').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('name', 'varchar(64)', (c) => c.notNull()).execute();
    },
  },
};

describe('catalog URLs', () => {
  it('parses every supported form', () => {
    expect(parseCatalogUrl('sqlite:/tmp/x.db')).toEqual({ dialect: 'sqlite', target: '/tmp/x.db' });
    expect(parseCatalogUrl('sqlite:///tmp/x.db')).toEqual({ dialect: 'sqlite', target: '/tmp/x.db' });
    expect(parseCatalogUrl('data/catalog.db')).toEqual({ dialect: 'sqlite', target: 'data/catalog.db' });
    expect(parseCatalogUrl('mariadb://u@h/d').dialect).toBe('mysql');
    expect(parseCatalogUrl('postgresql://u@h/d').dialect).toBe('postgres');
    expect(() => parseCatalogUrl('redis://h')).toThrow(/unsupported catalog URL/);
    expect(() => parseCatalogUrl('sqlite:')).toThrow(/names no file/);
  });

  it('masks passwords', () => {
    expect(maskUrl('mysql://user:s3cret@host:3306/db')).toBe('mysql://user:***@host:3306/db');
    expect(maskUrl('postgres://user@host/db')).toBe('postgres://user@host/db');
    expect(() => parseCatalogUrl('ftp://u:s3cret@h')).toThrow(/u:\*\*\*@h/);
  });

  it('reports an unreachable server without the password', async () => {
    const err = await openCatalogDatabase('mysql://root:hunter2@127.0.0.1:1/x').catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/cannot reach catalog/);
    expect((err as Error).message).not.toContain('hunter2');
  });
});

const fresh: FreshDatabase[] = [];
afterAll(async () => {
  for (const f of fresh) await f.drop();
});

async function roundTrip(url: string) {
  const cat = await openCatalogDatabase<DB>(url);
  try {
    await migrateComponent(cat.db, 'test', migrations);
    await migrateComponent(cat.db, 'test', migrations); // idempotent
    await cat.db.insertInto('things').values([{ id: 1, name: 'ünï' }, { id: 2, name: 'b' }]).execute();
    const rows = await cat.db.selectFrom('things').selectAll().orderBy('id').execute();
    expect(rows).toEqual([{ id: 1, name: 'ünï' }, { id: 2, name: 'b' }]);
    const n = await sql<{ n: number }>`select count(*) as n from cairn_test_migrations`.execute(cat.db);
    expect(Number(n.rows[0].n)).toBe(1);
  } finally {
    await cat.close();
  }
}

describe('catalog databases', () => {
  it('migrates and round-trips on SQLite', async () => {
    const dir = await tempDir();
    await roundTrip(`sqlite:${path.join(dir, 'sub', 'catalog.db')}`);
  });
  it.runIf(HAVE_MARIADB)('migrates and round-trips on MariaDB', async () => {
    const f = await freshMysqlDatabase();
    fresh.push(f);
    await roundTrip(f.url);
  });
  it.runIf(HAVE_POSTGRES)('migrates and round-trips on PostgreSQL', async () => {
    const f = await freshPostgresDatabase();
    fresh.push(f);
    await roundTrip(f.url);
  });
});
