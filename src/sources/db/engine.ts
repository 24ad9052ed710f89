import type { CredentialDir } from './credentials.js';
import type { DbEngineName, DbLocation } from './url.js';

/** One table's row count, as `db-verify` reports it. */
export interface TableCount {
  table: string;
  rows: number;
}

export interface DumpOptions {
  signal?: AbortSignal;
  /**
   * A secret that stays the same for one repository. Where a dump tool would write a fresh random
   * token each run (pg_dump's psql \restrict key), one derived from this secret and the database
   * name is used instead, so an unchanged database gives the same bytes and deduplicates; the
   * database server cannot guess it.
   */
  stableSecret?: string;
}

/**
 * What Cairn needs from a database engine. `mysql.ts`, `postgres.ts` and `sqlite.ts` each export
 * one; adding an engine means writing this shape once more, not touching the callers.
 */
export interface DbEngine {
  readonly name: DbEngineName;
  /** Where the dump lives in a snapshot, e.g. `/mysql/shop.sql`. */
  snapshotPath(loc: DbLocation): string;
  /**
   * The dump as a stream. It ends only once the dump tool exited well; a failed dump throws (with
   * the tool's stderr, secrets blanked), so a consumer never mistakes half a dump for a whole one.
   * Passwords reach the tool through files in `cred`.
   */
  dump(loc: DbLocation, cred: CredentialDir, opts?: DumpOptions): AsyncIterable<Buffer>;
  /** Loads a dump made by `dump` (in `format`) into `loc.database`, creating the database when missing. */
  restore(loc: DbLocation, input: AsyncIterable<Buffer>, cred: CredentialDir, signal?: AbortSignal): Promise<void>;
  /** Base tables (not views) and their exact row counts, in name order. */
  census(loc: DbLocation): Promise<TableCount[]>;
  /** Removes the database (a scratch one after a drill); no error when it is already gone. */
  drop(loc: DbLocation): Promise<void>;
}

/** The snapshot path's engine and format: `/mysql/x.sql`, `/postgres/x.sql|.dump`, `/sqlite/x.db`. */
export function dumpKindOfPath(p: string): { engine: DbEngineName; format: 'plain' | 'custom'; database: string } | null {
  const m = /^\/(mysql|postgres|sqlite)\/([^/]+)\.(sql|dump|db)$/.exec(p);
  if (!m) return null;
  const [, engine, database, ext] = m;
  const ok = (engine === 'mysql' && ext === 'sql') || (engine === 'postgres' && ext !== 'db') || (engine === 'sqlite' && ext === 'db');
  if (!ok) return null;
  return { engine: engine as DbEngineName, format: ext === 'dump' ? 'custom' : 'plain', database };
}
