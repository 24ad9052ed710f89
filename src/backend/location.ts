import { CairnError } from '../errors.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';

const SUPPORTED = 'a folder (/srv/backup, ./backup, backup) or local:/path/to/folder';
/** restic's other backends: named, so that such a location gets a precise answer. */
const RESTIC_ONLY = new Set(['sftp', 'b2', 'azure', 'gs', 'swift', 'rclone']);

/**
 * Opens the backend for a repository location written as restic writes it. A location that
 * starts with `/`, `./` or `../`, or has no `:`, is a folder; otherwise the text before the first
 * `:` names the backend, as in `local:/srv/backup`. As in restic, a relative folder whose name
 * contains `:` needs the `local:` prefix. Throws `BAD_INPUT` for backends Cairn does not have;
 * messages never repeat the location past its scheme, since it may hold credentials.
 */
export function openBackend(location: string): Backend {
  if (location === '') throw new CairnError('BAD_INPUT', `empty repository location: use ${SUPPORTED}`);
  const colon = location.indexOf(':');
  if (colon < 0 || /^\.{0,2}\//.test(location)) return new LocalBackend(location);
  const scheme = location.slice(0, colon);
  switch (scheme) {
    case 'local': {
      const folder = location.slice(colon + 1);
      if (folder === '') throw new CairnError('BAD_INPUT', 'local: needs a folder, as in local:/srv/backup');
      return new LocalBackend(folder);
    }
    case 's3':
      throw new CairnError('BAD_INPUT', `the S3 backend is not available yet; use ${SUPPORTED}`);
    case 'rest':
      throw new CairnError('BAD_INPUT', `the REST backend is not available yet; use ${SUPPORTED}`);
    default: {
      const what = RESTIC_ONLY.has(scheme) ? `restic's ${scheme}: backend is not supported by cairn` : `unknown repository type ${/^[a-z][a-z0-9+.-]{0,15}$/i.test(scheme) ? `"${scheme}:"` : 'prefix'}`;
      throw new CairnError('BAD_INPUT', `${what}; use ${SUPPORTED} (a relative folder whose name contains ":" needs the local: prefix)`);
    }
  }
}
