import { CairnError } from '../errors.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';

/**
 * Opens a backend from a repository location as restic writes it: a path or `local:/path`.
 * `s3:` and `rest:` are recognised and refused until their backends exist.
 */
export function openBackend(location: string): Backend {
  if (!location) throw new CairnError('BAD_INPUT', 'empty repository location');
  const m = /^([a-z][a-z0-9+]*):(.*)$/.exec(location);
  if (!m) return new LocalBackend(location);
  const [, scheme, rest] = m;
  switch (scheme) {
    case 'local':
      if (!rest) throw new CairnError('BAD_INPUT', 'local: needs a path, e.g. local:/srv/backup');
      return new LocalBackend(rest);
    case 's3':
    case 'rest':
      throw new CairnError('BAD_INPUT', `the ${scheme} backend is not available yet; use a local path`);
    default:
      throw new CairnError('BAD_INPUT', `unsupported repository location ${JSON.stringify(location)}: use a path or local:/path`);
  }
}
