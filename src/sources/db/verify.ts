import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CairnError } from '../../errors.js';
import type { Repository } from '../../repository/repository.js';
import type { Snapshot } from '../../repository/snapshot.js';
import type { TableCount } from './engine.js';
import { dumpKindOfPath } from './engine.js';
import { engineFor } from './engines.js';
import { restoreDatabase } from './restore.js';
import type { DbLocation } from './url.js';

export interface VerifyReport {
  snapshot: string;
  path: string;
  engine: string;
  scratch_database: string;
  tables: number;
  rows: number;
  per_table: TableCount[];
  dump_bytes: number;
  seconds: number;
}

/**
 * A restore drill: loads the dump into a scratch database named `cairn_verify_<random>` on the
 * `scratch` server (SQLite: a file in a temporary folder), counts its tables and rows, and drops
 * it again, whatever happened. A dump that does not load fails the drill with the tool's error.
 */
export async function verifyDump(repo: Repository, snap: Snapshot, dumpPath: string, scratch: DbLocation | undefined, signal?: AbortSignal): Promise<VerifyReport> {
  const kind = dumpKindOfPath(dumpPath);
  if (!kind) throw new CairnError('BAD_INPUT', `${dumpPath} is not a database dump`);
  const engine = engineFor(kind.engine);
  const name = `cairn_verify_${randomBytes(6).toString('hex')}`;
  let tempDir: string | undefined;
  let loc: DbLocation;
  if (kind.engine === 'sqlite') {
    tempDir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-verify-'));
    loc = { engine: 'sqlite', database: name, host: '', port: 0, user: '', format: 'plain', file: path.join(tempDir, `${name}.db`) };
  } else {
    if (!scratch) throw new CairnError('BAD_INPUT', `a ${kind.engine} drill needs a server to load into: give --scratch ${kind.engine}://user@host:port`);
    if (scratch.engine !== kind.engine) throw new CairnError('BAD_INPUT', `${dumpPath} is a ${kind.engine} dump; --scratch names a ${scratch.engine} server`);
    if (scratch.database) throw new CairnError('BAD_INPUT', '--scratch names a server, not a database: leave the database name out (a fresh one is made and dropped)');
    loc = { ...scratch, database: name, format: kind.format };
  }
  const started = Date.now();
  try {
    const { bytes } = await restoreDatabase(repo, snap, dumpPath, loc, signal);
    const perTable = await engine.census(loc);
    return {
      snapshot: snap.id,
      path: dumpPath,
      engine: kind.engine,
      scratch_database: name,
      tables: perTable.length,
      rows: perTable.reduce((a, t) => a + t.rows, 0),
      per_table: perTable,
      dump_bytes: bytes,
      seconds: Math.round((Date.now() - started) / 10) / 100,
    };
  } finally {
    await engine.drop(loc).catch(() => undefined);
    if (tempDir) await fs.rm(tempDir, { recursive: true, force: true });
  }
}
