/**
 * A sample database for the database backup tests, the same in each engine: tables with binary
 * columns, unicode, NULLs and 100,000 rows, a view, a trigger and a routine (SQLite has no
 * routines), plus per-table row counts and checksums computed by the database itself.
 */
import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';
import pg from 'pg';
import { MYSQL_HOST, MYSQL_PORT, PG_HOST, PG_PORT } from './databases.js';

export const FIXTURE_ROWS = 100_000;
export const TABLES = ['audit', 'customers', 'events'];

/** Per table: row count and checksum; plus which view, trigger and routine exist. */
export interface DbFingerprint {
  tables: Record<string, { rows: number; checksum: string }>;
  views: string[];
  triggers: string[];
  routines: string[];
}

const CUSTOMERS: [string, string | null, string | null][] = [
  ['Zoë Ødegård 🚀', null, '00ff10e2809c'],
  ['日本語テキスト', "line1\nline2 'quoted' \\ back", null],
  ['Ελληνικά', 'tab\there', '000000'],
  ['plain', '', 'deadbeef'],
];

export async function mysqlConnection(database: string): Promise<mysql.Connection> {
  return mysql.createConnection({ host: MYSQL_HOST, port: MYSQL_PORT, user: 'root', database, multipleStatements: true, charset: 'utf8mb4' });
}

export async function fillMysql(database: string): Promise<void> {
  const c = await mysqlConnection(database);
  try {
    await c.query(`
      CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(100) NOT NULL, note TEXT NULL, avatar BLOB NULL, created DATETIME(6) NOT NULL) CHARACTER SET utf8mb4;
      CREATE TABLE events (id INT PRIMARY KEY, customer_id INT NULL, payload VARBINARY(64) NOT NULL, amount DECIMAL(12,2) NULL, label VARCHAR(60) NOT NULL) CHARACTER SET utf8mb4;
      CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, customer_id INT NOT NULL, action VARCHAR(20) NOT NULL);
      CREATE TRIGGER customers_ai AFTER INSERT ON customers FOR EACH ROW INSERT INTO audit (customer_id, action) VALUES (NEW.id, 'insert');
      CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
      CREATE VIEW customer_events AS SELECT c.name, COUNT(e.id) AS n FROM customers c LEFT JOIN events e ON e.customer_id = c.id GROUP BY c.name;
    `);
    for (const [name, note, avatar] of CUSTOMERS) {
      await c.query('INSERT INTO customers (name, note, avatar, created) VALUES (?, ?, ?, ?)', [name, note, avatar === null ? null : Buffer.from(avatar, 'hex'), '2024-01-02 03:04:05.123456']);
    }
    await c.query(`INSERT INTO events SELECT seq, IF(seq % 7 = 0, NULL, seq % 4 + 1), UNHEX(SHA2(seq, 256)), IF(seq % 5 = 0, NULL, seq / 100), CONCAT('ev-', seq, IF(seq % 11 = 0, ' ünï ✓', '')) FROM seq_1_to_${FIXTURE_ROWS}`);
  } finally {
    await c.end();
  }
}

export async function fingerprintMysql(database: string): Promise<DbFingerprint> {
  const c = await mysqlConnection(database);
  try {
    const tables: DbFingerprint['tables'] = {};
    for (const t of TABLES) {
      const [[count]] = await c.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM \`${t}\``);
      const [[sum]] = await c.query<mysql.RowDataPacket[]>(`CHECKSUM TABLE \`${t}\` EXTENDED`);
      tables[t] = { rows: Number(count.n), checksum: String(sum.Checksum) };
    }
    const names = async (sql: string): Promise<string[]> => ((await c.query<mysql.RowDataPacket[]>(sql, [database]))[0]).map((r) => String(r.n)).sort();
    return {
      tables,
      views: await names('SELECT table_name AS n FROM information_schema.views WHERE table_schema = ?'),
      triggers: await names('SELECT trigger_name AS n FROM information_schema.triggers WHERE trigger_schema = ?'),
      routines: await names('SELECT routine_name AS n FROM information_schema.routines WHERE routine_schema = ?'),
    };
  } finally {
    await c.end();
  }
}

export async function pgClient(database: string): Promise<pg.Client> {
  const c = new pg.Client({ host: PG_HOST, port: PG_PORT, user: 'postgres', database });
  await c.connect();
  return c;
}

export async function fillPostgres(database: string): Promise<void> {
  const c = await pgClient(database);
  try {
    await c.query(`
      CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, note text NULL, avatar bytea NULL, created timestamptz NOT NULL);
      CREATE TABLE events (id int PRIMARY KEY, customer_id int NULL, payload bytea NOT NULL, amount numeric(12,2) NULL, label text NOT NULL);
      CREATE TABLE audit (id serial PRIMARY KEY, customer_id int NOT NULL, action text NOT NULL);
      CREATE FUNCTION double_it(x int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT x * 2 $$;
      CREATE FUNCTION audit_customer() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit (customer_id, action) VALUES (NEW.id, 'insert'); RETURN NEW; END $$;
      CREATE TRIGGER customers_ai AFTER INSERT ON customers FOR EACH ROW EXECUTE FUNCTION audit_customer();
      CREATE VIEW customer_events AS SELECT c.name, COUNT(e.id) AS n FROM customers c LEFT JOIN events e ON e.customer_id = c.id GROUP BY c.name;
    `);
    for (const [name, note, avatar] of CUSTOMERS) {
      await c.query('INSERT INTO customers (name, note, avatar, created) VALUES ($1, $2, $3, $4)', [name, note, avatar === null ? null : Buffer.from(avatar, 'hex'), '2024-01-02 03:04:05.123456+00']);
    }
    await c.query(`INSERT INTO events SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE g % 4 + 1 END, sha256(g::text::bytea), CASE WHEN g % 5 = 0 THEN NULL ELSE g / 100.0 END, 'ev-' || g || CASE WHEN g % 11 = 0 THEN ' ünï ✓' ELSE '' END FROM generate_series(1, ${FIXTURE_ROWS}) g`);
  } finally {
    await c.end();
  }
}

export async function fingerprintPostgres(database: string): Promise<DbFingerprint> {
  const c = await pgClient(database);
  try {
    const tables: DbFingerprint['tables'] = {};
    for (const t of TABLES) {
      const r = await c.query<{ n: string; sum: string }>(`SELECT COUNT(*) AS n, md5(string_agg(x::text, E'\\n' ORDER BY x.id)) AS sum FROM ${t} x`);
      tables[t] = { rows: Number(r.rows[0].n), checksum: r.rows[0].sum };
    }
    const names = async (sql: string): Promise<string[]> => (await c.query<{ n: string }>(sql)).rows.map((r) => r.n).sort();
    return {
      tables,
      views: await names("SELECT viewname AS n FROM pg_views WHERE schemaname = 'public'"),
      triggers: await names('SELECT tgname AS n FROM pg_trigger WHERE NOT tgisinternal'),
      routines: await names("SELECT p.proname AS n FROM pg_proc p JOIN pg_namespace s ON s.oid = p.pronamespace WHERE s.nspname = 'public'"),
    };
  } finally {
    await c.end();
  }
}

export function fillSqlite(file: string): void {
  const db = new Database(file);
  try {
    db.exec(`
      CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT NULL, avatar BLOB NULL, created TEXT NOT NULL);
      CREATE TABLE events (id INTEGER PRIMARY KEY, customer_id INTEGER NULL, payload BLOB NOT NULL, amount REAL NULL, label TEXT NOT NULL);
      CREATE TABLE audit (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, action TEXT NOT NULL);
      CREATE TRIGGER customers_ai AFTER INSERT ON customers BEGIN INSERT INTO audit (customer_id, action) VALUES (NEW.id, 'insert'); END;
      CREATE VIEW customer_events AS SELECT c.name, COUNT(e.id) AS n FROM customers c LEFT JOIN events e ON e.customer_id = c.id GROUP BY c.name;
    `);
    const add = db.prepare('INSERT INTO customers (name, note, avatar, created) VALUES (?, ?, ?, ?)');
    for (const [name, note, avatar] of CUSTOMERS) add.run(name, note, avatar === null ? null : Buffer.from(avatar, 'hex'), '2024-01-02 03:04:05.123456');
    db.exec(`WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ${FIXTURE_ROWS})
      INSERT INTO events SELECT n, CASE WHEN n % 7 = 0 THEN NULL ELSE n % 4 + 1 END, randomblob(32), CASE WHEN n % 5 = 0 THEN NULL ELSE n / 100.0 END, 'ev-' || n || CASE WHEN n % 11 = 0 THEN ' ünï ✓' ELSE '' END FROM g`);
  } finally {
    db.close();
  }
}

/** SQLite has no md5(): the rows are hashed here, in primary-key order, with blobs as hex. */
export function fingerprintSqlite(file: string): DbFingerprint {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const tables: DbFingerprint['tables'] = {};
    for (const t of TABLES) {
      const h = createHash('md5');
      let rows = 0;
      for (const row of db.prepare(`SELECT * FROM ${t} ORDER BY id`).iterate() as Iterable<Record<string, unknown>>) {
        rows++;
        h.update(JSON.stringify(Object.values(row).map((v) => (Buffer.isBuffer(v) ? `x${v.toString('hex')}` : v))));
        h.update('\n');
      }
      tables[t] = { rows, checksum: h.digest('hex') };
    }
    const names = (type: string): string[] => (db.prepare('SELECT name FROM sqlite_master WHERE type = ? ORDER BY name').all(type) as { name: string }[]).map((r) => r.name);
    return { tables, views: names('view'), triggers: names('trigger'), routines: [] };
  } finally {
    db.close();
  }
}
