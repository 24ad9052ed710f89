import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CairnError } from '../errors.js';
import { replaceFile, type Handle } from '../backend/backend.js';
import { openConfig, sealConfig } from '../repository/config.js';
import type { Repository } from '../repository/repository.js';

/** restic's migrations, by the names restic gives them. */
export interface Migration {
  name: string;
  description: string;
  /** Null when the migration applies to this repository, else why not. */
  refusal(repo: Repository): string | null;
  /** Whether the repository must pass a check (structure, no data read) before it is applied. */
  checkFirst: boolean;
  apply(repo: Repository, signal?: AbortSignal): Promise<void>;
}

const CONFIG: Handle = { type: 'config', name: '' };

/**
 * restic's upgrade_repo_v2: the config says version 2 from now on, so new data and new index and
 * snapshot files are compressed. Nothing else changes: version 2 reads every version 1 file as it
 * is, and `prune --repack-uncompressed` compresses the old data. The old config's bytes are kept
 * in a private folder under the system's temporary folder until the new one is in place: on a
 * backend that cannot replace a file atomically (REST) a crash between removing the old config and
 * saving the new one would leave none, and that copy stays; a failure names it.
 */
const upgradeRepoV2: Migration = {
  name: 'upgrade_repo_v2',
  description: 'upgrade a repository to version 2',
  checkFirst: true,
  refusal: (repo) => (repo.config.version === 1 ? null : `repository is already upgraded to version ${repo.config.version}`),
  async apply(repo, signal) {
    const raw = await repo.backend.load(CONFIG, 0, undefined, signal);
    const old = openConfig(repo.key, raw);
    if (old.id !== repo.config.id) throw new CairnError('INTEGRITY', 'the config file changed while the repository was open; run migrate again');
    const folder = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-migrate-upgrade-repo-v2-'));
    const copy = path.join(folder, 'config');
    await fs.writeFile(copy, raw, { mode: 0o600 });
    const sealed = sealConfig(repo.key, { ...old, version: 2 });
    try {
      await replaceFile(repo.backend, CONFIG, sealed, signal);
      const back = openConfig(repo.key, await repo.backend.load(CONFIG));
      if (back.version !== 2 || back.id !== old.id) throw new CairnError('INTEGRITY', 'the config read back is not the one written');
    } catch (err) {
      const why = (err as Error).message;
      // An atomic replace that failed left the old config as it was; otherwise it goes back.
      const now = await repo.backend.load(CONFIG).catch(() => null);
      if (!now?.equals(raw)) {
        try {
          await replaceFile(repo.backend, CONFIG, raw);
        } catch (again) {
          throw new CairnError('BACKEND_UNAVAILABLE', `saving the new config failed (${why}), and putting the old one back failed too (${(again as Error).message}): copy ${copy} to the repository's config file`, { cause: err });
        }
      }
      throw new CairnError(err instanceof CairnError ? err.code : 'BACKEND_UNAVAILABLE', `saving the new config failed (${why}); the old config is in place (a copy is in ${copy})`, { cause: err });
    }
    await fs.rm(folder, { recursive: true, force: true });
  },
};

export const MIGRATIONS: readonly Migration[] = [upgradeRepoV2];

export function findMigration(name: string): Migration {
  const m = MIGRATIONS.find((x) => x.name === name);
  if (!m) throw new CairnError('BAD_INPUT', `unknown migration ${JSON.stringify(name)}; migrations: ${MIGRATIONS.map((x) => x.name).join(', ')}`);
  return m;
}
