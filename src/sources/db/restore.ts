import { CairnError } from '../../errors.js';
import type { Repository } from '../../repository/repository.js';
import type { Snapshot } from '../../repository/snapshot.js';
import { fileContent, findFileNode } from '../../restorer/file-stream.js';
import { withCredentials } from './credentials.js';
import { dumpKindOfPath } from './engine.js';
import { engineFor } from './engines.js';
import type { DbLocation } from './url.js';

/** The dump a command means: `--path` when given, else the one database file the snapshot holds. */
export function chooseDumpPath(snap: Snapshot, wanted?: string): string {
  const p = wanted ?? (snap.paths.length === 1 ? snap.paths[0] : undefined);
  if (!p) throw new CairnError('BAD_INPUT', `snapshot holds ${snap.paths.length} paths (${snap.paths.join(', ')}): choose one with --path`);
  if (!dumpKindOfPath(p)) throw new CairnError('BAD_INPUT', `${p} is not a database dump: expected /mysql/<name>.sql, /postgres/<name>.sql or .dump, or /sqlite/<name>.db`);
  return p;
}

/**
 * Streams the dump at `dumpPath` in `snap` into the database at `to` (created when missing). The
 * engine of `to` must be the dump's; a PostgreSQL dump's format follows its file name.
 */
export async function restoreDatabase(repo: Repository, snap: Snapshot, dumpPath: string, to: DbLocation, signal?: AbortSignal): Promise<{ bytes: number }> {
  const kind = dumpKindOfPath(dumpPath);
  if (!kind) throw new CairnError('BAD_INPUT', `${dumpPath} is not a database dump`);
  if (kind.engine !== to.engine) throw new CairnError('BAD_INPUT', `${dumpPath} is a ${kind.engine} dump and cannot be loaded into ${to.engine}`);
  const node = await findFileNode(repo, snap, dumpPath);
  const target: DbLocation = { ...to, format: kind.format };
  await withCredentials((cred) => engineFor(kind.engine).restore(target, fileContent(repo, node), cred, signal));
  return { bytes: node.size ?? 0 };
}
