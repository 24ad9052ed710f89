import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { CairnError } from '../../errors.js';
import type { CredentialDir } from './credentials.js';
import type { DbEngine, TableCount } from './engine.js';
import type { DbLocation } from './url.js';

function fileOf(loc: DbLocation): string {
  if (!loc.file) throw new CairnError('BAD_INPUT', 'a SQLite location needs a file: sqlite:/path/file.db');
  return loc.file;
}

function open(file: string, readonly: boolean): Database.Database {
  try {
    return new Database(file, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw new CairnError(readonly ? 'NOT_FOUND' : 'INTERNAL', `cannot open SQLite database ${file}: ${(err as Error).message}`);
  }
}

/**
 * SQLite through better-sqlite3's online backup API. The API writes to a file, so the consistent
 * copy goes to the private temporary folder (0700, removed afterwards) and is streamed from there;
 * a writer on the live database is never blocked for longer than one step of the copy.
 */
export const sqliteEngine: DbEngine = {
  name: 'sqlite',

  snapshotPath: (loc) => `/sqlite/${loc.database}.db`,

  async *dump(loc, cred: CredentialDir, opts = {}) {
    const copy = path.join(cred.dir, 'copy.db');
    const db = open(fileOf(loc), true);
    try {
      await db.backup(copy);
    } finally {
      db.close();
    }
    try {
      for await (const chunk of createReadStream(copy, { signal: opts.signal })) yield chunk as Buffer;
    } finally {
      await fs.rm(copy, { force: true });
    }
  },

  async restore(loc, input, _cred, signal) {
    // Loaded next to the target first and checked, then copied in with the backup API, which
    // replaces the target's pages under SQLite's own locking rather than swapping a file under an open connection.
    const target = fileOf(loc);
    const staged = `${target}.cairn-restore-${process.pid}`;
    try {
      await pipeline(Readable.from(input), createWriteStream(staged, { mode: 0o600 }), { signal });
      const db = open(staged, true);
      try {
        const check = db.pragma('integrity_check', { simple: true });
        if (check !== 'ok') throw new CairnError('INTEGRITY', `the SQLite dump fails its integrity check: ${String(check)}`);
        await db.backup(target);
      } finally {
        db.close();
      }
    } finally {
      await fs.rm(staged, { force: true });
    }
  },

  async census(loc) {
    const db = open(fileOf(loc), true);
    try {
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[];
      return tables.map(({ name }): TableCount => {
        const row = db.prepare(`SELECT COUNT(*) AS n FROM "${name.replace(/"/g, '""')}"`).get() as { n: number };
        return { table: name, rows: row.n };
      });
    } finally {
      db.close();
    }
  },

  async drop(loc) {
    const file = fileOf(loc);
    for (const suffix of ['', '-wal', '-shm', '-journal']) await fs.rm(`${file}${suffix}`, { force: true });
  },
};
