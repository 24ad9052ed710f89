/**
 * Fresh, throw-away databases on the machine's MariaDB and PostgreSQL for tests.
 * In CI (CI=true) a missing server fails the test loudly; elsewhere the test is skipped with a hint.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { runCommand } from './tools.js';

export const MYSQL_HOST = process.env.CAIRN_TEST_MYSQL_HOST ?? '127.0.0.1';
export const MYSQL_PORT = Number(process.env.CAIRN_TEST_MYSQL_PORT ?? 3306);
export const PG_HOST = process.env.CAIRN_TEST_PG_HOST ?? '127.0.0.1';
export const PG_PORT = Number(process.env.CAIRN_TEST_PG_PORT ?? 5432);

function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

async function serviceUp(name: string, host: string, port: number, hint: string): Promise<boolean> {
  const up = await portOpen(host, port);
  if (!up && process.env.CI === 'true') throw new Error(`${name} is required in CI on ${host}:${port}: ${hint}`);
  if (!up) console.warn(`skipping: ${name} is not running on ${host}:${port} (${hint})`);
  return up;
}

export const HAVE_MARIADB = await serviceUp('MariaDB', MYSQL_HOST, MYSQL_PORT, 'apt-get install -y mariadb-server and start it');
export const HAVE_POSTGRES = await serviceUp('PostgreSQL', PG_HOST, PG_PORT, 'apt-get install -y postgresql and start it');

export interface FreshDatabase {
  name: string;
  /** Connection URL as root/postgres without a password (the machine's trust set-up). */
  url: string;
  drop(): Promise<void>;
}

function freshName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** Creates an empty MariaDB database; `drop()` removes it. */
export async function freshMysqlDatabase(prefix = 'cairn_t'): Promise<FreshDatabase> {
  const name = freshName(prefix);
  const r = await runCommand('mariadb', ['-h', MYSQL_HOST, '-P', String(MYSQL_PORT), '-u', 'root', '-e', `CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`]);
  if (r.code !== 0) throw new Error(`cannot create MariaDB database: ${r.stderr}`);
  return {
    name,
    url: `mysql://root@${MYSQL_HOST}:${MYSQL_PORT}/${name}`,
    drop: async () => {
      await runCommand('mariadb', ['-h', MYSQL_HOST, '-P', String(MYSQL_PORT), '-u', 'root', '-e', `DROP DATABASE IF EXISTS \`${name}\``]);
    },
  };
}

/** Creates an empty PostgreSQL database; `drop()` removes it. */
export async function freshPostgresDatabase(prefix = 'cairn_t'): Promise<FreshDatabase> {
  const name = freshName(prefix);
  const r = await runCommand('psql', ['-h', PG_HOST, '-p', String(PG_PORT), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE "${name}"`]);
  if (r.code !== 0) throw new Error(`cannot create PostgreSQL database: ${r.stderr}`);
  return {
    name,
    url: `postgres://postgres@${PG_HOST}:${PG_PORT}/${name}`,
    drop: async () => {
      await runCommand('psql', ['-h', PG_HOST, '-p', String(PG_PORT), '-U', 'postgres', '-d', 'postgres', '-c', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`]);
    },
  };
}
