import { createHash } from 'node:crypto';
import type { BackupResult } from '../../archiver/archiver.js';
import { backupStreamAt } from '../../archiver/stdin.js';
import { findParent } from '../../repository/find.js';
import type { Repository } from '../../repository/repository.js';
import type { WorkerPool } from '../../repository/worker-pool.js';
import { withCredentials } from './credentials.js';
import { engineFor } from './engines.js';
import type { DbLocation } from './url.js';

/** Derived from the repository's secret chunker polynomial: the same for every backup into this repository, unknown outside it. */
function stableSecret(repo: Repository): string {
  return createHash('sha256').update(`cairn db dump key\0${repo.config.polynomial.toString(16)}`).digest('hex');
}

/** The tag every database snapshot carries, besides the user's own. */
export const DB_TAG = 'db';

/**
 * Streams one database's dump into a new snapshot of its own, holding the single file
 * `/mysql/<name>.sql`, `/postgres/<name>.sql|.dump` or `/sqlite/<name>.db`. One snapshot per
 * database keeps restic's grouping by paths meaningful: `latest --path /mysql/shop.sql`, `forget
 * --group-by paths` and the parent all work per database, and one failed dump costs no other.
 * A dump that fails leaves no snapshot. The repository's index must be loaded.
 */
export async function backupDatabase(
  repo: Repository,
  pool: WorkerPool,
  loc: DbLocation,
  opts: { host: string; tags?: string[]; signal?: AbortSignal },
): Promise<BackupResult & { path: string }> {
  const engine = engineFor(loc.engine);
  const filePath = engine.snapshotPath(loc);
  const tags = [DB_TAG, ...(opts.tags ?? []).filter((t) => t !== DB_TAG)];
  const parent = await findParent(repo, opts.host, [filePath]);
  const result = await withCredentials((cred) => backupStreamAt(repo, pool, engine.dump(loc, cred, { signal: opts.signal, stableSecret: stableSecret(repo) }), filePath, { host: opts.host, tags, parent: parent?.id, signal: opts.signal }));
  return { ...result, path: filePath };
}
