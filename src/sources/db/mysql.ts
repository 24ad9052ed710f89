import mysql from 'mysql2/promise';
import { CairnError } from '../../errors.js';
import type { CredentialDir } from './credentials.js';
import type { DbEngine, TableCount } from './engine.js';
import { feedTool, findTool, outputOf, startTool } from './tool.js';
import type { DbLocation } from './url.js';

const HINT = 'apt-get install -y mariadb-client';

/** Options that make a dump complete (routines, triggers, events, binary as hex) and repeatable byte for byte, so unchanged data deduplicates. */
const DUMP_OPTIONS = ['--single-transaction', '--routines', '--triggers', '--events', '--hex-blob', '--skip-dump-date', '--order-by-primary', '--default-character-set=utf8mb4', '--quick'];

function connectArgs(loc: DbLocation, optionFile: string): string[] {
  // --defaults-extra-file must come first; user and password are in it, never in argv.
  const args = [`--defaults-extra-file=${optionFile}`, '-h', loc.host, '-P', String(loc.port)];
  if (loc.host !== 'localhost') args.push('--protocol=TCP');
  return args;
}

function quoteName(name: string): string {
  return `\`${name.replace(/`/g, '``')}\``;
}

async function connect(loc: DbLocation, database?: string): Promise<mysql.Connection> {
  try {
    return await mysql.createConnection({ host: loc.host, port: loc.port, user: loc.user, password: loc.password ?? '', database, multipleStatements: false });
  } catch (err) {
    throw new CairnError('INTERNAL', `cannot connect to MySQL ${loc.user}@${loc.host}:${loc.port}: ${(err as Error).message}`);
  }
}

async function withConnection<T>(loc: DbLocation, database: string | undefined, fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const c = await connect(loc, database);
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** MySQL and MariaDB through `mariadb-dump`/`mysqldump` and the `mariadb`/`mysql` client. */
export const mysqlEngine: DbEngine = {
  name: 'mysql',

  snapshotPath: (loc) => `/mysql/${loc.database}.sql`,

  async *dump(loc, cred: CredentialDir, opts = {}) {
    const tool = findTool(['mariadb-dump', 'mysqldump'], HINT);
    const optionFile = await cred.mysqlOptionFile(loc);
    const run = startTool(tool, [...connectArgs(loc, optionFile), ...DUMP_OPTIONS, loc.database], { secrets: [loc.password], signal: opts.signal, what: `dump of MySQL database ${loc.database}` });
    yield* outputOf(run);
  },

  async restore(loc, input, cred, signal) {
    const tool = findTool(['mariadb', 'mysql'], HINT);
    await withConnection(loc, undefined, (c) => c.query(`CREATE DATABASE IF NOT EXISTS ${quoteName(loc.database)} CHARACTER SET utf8mb4`));
    const optionFile = await cred.mysqlOptionFile(loc, 'restore.cnf');
    const run = startTool(tool, [...connectArgs(loc, optionFile), '--default-character-set=utf8mb4', '--binary-mode', loc.database], { secrets: [loc.password], signal, what: `load into MySQL database ${loc.database}` });
    await feedTool(run, input);
  },

  census: (loc) =>
    withConnection(loc, loc.database, async (c) => {
      const [tables] = await c.query<mysql.RowDataPacket[]>(
        "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' ORDER BY table_name",
        [loc.database],
      );
      const out: TableCount[] = [];
      for (const { t } of tables) {
        const [rows] = await c.query<mysql.RowDataPacket[]>(`SELECT COUNT(*) AS n FROM ${quoteName(String(t))}`);
        out.push({ table: String(t), rows: Number(rows[0].n) });
      }
      return out;
    }),

  async drop(loc) {
    await withConnection(loc, undefined, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteName(loc.database)}`));
  },
};
