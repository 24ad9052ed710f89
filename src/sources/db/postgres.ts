import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import pg from 'pg';
import { CairnError } from '../../errors.js';
import type { CredentialDir } from './credentials.js';
import type { DbEngine, TableCount } from './engine.js';
import { feedTool, findTool, outputOf, startTool } from './tool.js';
import type { DbLocation } from './url.js';

const HINT = 'apt-get install -y postgresql-client';

function connectArgs(loc: DbLocation): string[] {
  // -w: never prompt; the password comes from PGPASSFILE or nowhere.
  return ['-h', loc.host, '-p', String(loc.port), '-U', loc.user, '-w'];
}

const restrictKeySupport = new Map<string, boolean>();

/** pg_dump from 17.6, 16.10, 15.14 (and so on) writes a random `\restrict` key into plain dumps unless given one. */
function supportsRestrictKey(tool: string): boolean {
  let yes = restrictKeySupport.get(tool);
  if (yes === undefined) {
    yes = spawnSync(tool, ['--help'], { encoding: 'utf8' }).stdout?.includes('--restrict-key') ?? false;
    restrictKeySupport.set(tool, yes);
  }
  return yes;
}

function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

async function withClient<T>(loc: DbLocation, database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ host: loc.host, port: loc.port, user: loc.user, password: loc.password ?? '', database });
  try {
    await c.connect();
  } catch (err) {
    await c.end().catch(() => undefined);
    throw new CairnError('INTERNAL', `cannot connect to PostgreSQL ${loc.user}@${loc.host}:${loc.port}/${database}: ${(err as Error).message}`);
  }
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * PostgreSQL through `pg_dump`, `psql` and `pg_restore`. A custom-format dump is written without
 * pg_dump's own compression (`--compress=0`): the repository compresses anyway, and compressed
 * bytes would not deduplicate from one day to the next.
 */
export const postgresEngine: DbEngine = {
  name: 'postgres',

  snapshotPath: (loc) => `/postgres/${loc.database}.${loc.format === 'custom' ? 'dump' : 'sql'}`,

  async *dump(loc, cred: CredentialDir, opts = {}) {
    const tool = findTool(['pg_dump'], HINT);
    const passfile = await cred.pgPassFile(loc);
    const format = loc.format === 'custom' ? ['--format=custom', '--compress=0'] : ['--format=plain'];
    if (loc.format === 'plain' && opts.stableSecret && supportsRestrictKey(tool)) {
      format.push(`--restrict-key=${createHash('sha256').update(`${opts.stableSecret}\0${loc.database}`).digest('hex')}`);
    }
    const run = startTool(tool, [...connectArgs(loc), ...format, '-d', loc.database], { env: { PGPASSFILE: passfile }, secrets: [loc.password], signal: opts.signal, what: `dump of PostgreSQL database ${loc.database}` });
    yield* outputOf(run);
  },

  async restore(loc, input, cred, signal) {
    await withClient(loc, 'postgres', async (c) => {
      const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [loc.database]);
      if (r.rowCount === 0) await c.query(`CREATE DATABASE ${quoteIdent(loc.database)}`);
    });
    const passfile = await cred.pgPassFile(loc, 'restore.pgpass');
    const env = { PGPASSFILE: passfile };
    const what = `load into PostgreSQL database ${loc.database}`;
    // One transaction: a load that fails part way leaves the database as it was.
    const run =
      loc.format === 'custom'
        ? startTool(findTool(['pg_restore'], HINT), [...connectArgs(loc), '--exit-on-error', '--single-transaction', '-d', loc.database], { env, secrets: [loc.password], signal, what })
        : startTool(findTool(['psql'], HINT), [...connectArgs(loc), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-d', loc.database, '-f', '-'], { env, secrets: [loc.password], signal, what });
    await feedTool(run, input);
  },

  census: (loc) =>
    withClient(loc, loc.database, async (c) => {
      const tables = await c.query<{ s: string; t: string }>(
        "SELECT schemaname AS s, tablename AS t FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY schemaname, tablename",
      );
      const out: TableCount[] = [];
      for (const { s, t } of tables.rows) {
        const r = await c.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${quoteIdent(s)}.${quoteIdent(t)}`);
        out.push({ table: s === 'public' ? t : `${s}.${t}`, rows: Number(r.rows[0].n) });
      }
      return out;
    }),

  async drop(loc) {
    await withClient(loc, 'postgres', (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(loc.database)} WITH (FORCE)`));
  },
};
