import { CairnError } from '../errors.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local.js';
import { parseRestLocation, RestBackend } from './rest.js';
import { RetryBackend } from './retry.js';
import { parseS3Location, S3_OPTIONS, S3Backend } from './s3.js';

const SUPPORTED = 'a folder (/srv/backup, ./backup, backup), local:/path/to/folder, s3:http(s)://host[:port]/bucket[/prefix], s3:host/bucket[/prefix] or rest:http(s)://[user:password@]host[:port]/[path/]';
/** restic's other backends: named, so that such a location gets a precise answer. */
const RESTIC_ONLY = new Set(['sftp', 'b2', 'azure', 'gs', 'swift', 'rclone']);

/** Extended options (`-o scheme.name=value`), as restic takes them: only the opened backend's own are read. */
export type BackendOptions = Readonly<Record<string, string>>;

/**
 * Opens the backend for a repository location written as restic writes it. A location that
 * starts with `/`, `./` or `../`, or has no `:`, is a folder; otherwise the text before the first
 * `:` names the backend, as in `local:/srv/backup`, `s3:https://host/bucket/prefix` or
 * `rest:http://host:8000/`. As in restic, a relative folder whose name contains `:` needs the
 * `local:` prefix. Remote backends come wrapped in `RetryBackend`. Throws `BAD_INPUT` for
 * backends Cairn does not have and for unknown options; messages never repeat the location past
 * its scheme, since it may hold credentials.
 */
export function openBackend(location: string, options: BackendOptions = {}): Backend {
  if (location === '') throw new CairnError('BAD_INPUT', `empty repository location: use ${SUPPORTED}`);
  const colon = location.indexOf(':');
  if (colon < 0 || /^\.{0,2}\//.test(location)) return new LocalBackend(location);
  const scheme = location.slice(0, colon);
  const spec = location.slice(colon + 1);
  switch (scheme) {
    case 'local': {
      if (spec === '') throw new CairnError('BAD_INPUT', 'local: needs a folder, as in local:/srv/backup');
      ownOptions('local', options, {});
      return new LocalBackend(spec);
    }
    case 's3':
      return new RetryBackend(new S3Backend(parseS3Location(spec), ownOptions('s3', options, S3_OPTIONS)));
    case 'rest':
      ownOptions('rest', options, {});
      return new RetryBackend(new RestBackend(parseRestLocation(spec)));
    default: {
      const what = RESTIC_ONLY.has(scheme) ? `restic's ${scheme}: backend is not supported by cairn` : `unknown repository type ${/^[a-z][a-z0-9+.-]{0,15}$/i.test(scheme) ? `"${scheme}:"` : 'prefix'}`;
      throw new CairnError('BAD_INPUT', `${what}; use ${SUPPORTED} (a relative folder whose name contains ":" needs the local: prefix)`);
    }
  }
}

/**
 * Parses `name=value` pairs given with `-o`; `BAD_INPUT` for one without `=` or without a
 * `scheme.` namespace.
 */
export function parseBackendOptions(pairs: readonly string[]): BackendOptions {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    if (eq < 0 || !/^[a-z0-9]+\.[a-z0-9-]+$/.test(key)) {
      throw new CairnError('BAD_INPUT', `invalid option ${JSON.stringify(key)}: write it as backend.name=value, e.g. -o s3.storage-class=STANDARD_IA`);
    }
    if (eq === pair.length - 1) throw new CairnError('BAD_INPUT', `option ${key} needs a value: ${key}=VALUE`);
    out[key] = pair.slice(eq + 1);
  }
  return out;
}

/** The options in `scheme`'s namespace, renamed to the fields `known` maps them to; `BAD_INPUT` for names it does not know. */
function ownOptions<T extends string>(scheme: string, options: BackendOptions, known: Readonly<Record<string, T>>): Partial<Record<T, string>> {
  const out: Partial<Record<T, string>> = {};
  for (const [key, value] of Object.entries(options)) {
    if (!key.startsWith(`${scheme}.`)) continue;
    const name = key.slice(scheme.length + 1);
    if (!Object.hasOwn(known, name)) {
      const valid = Object.keys(known).map((k) => `${scheme}.${k}`);
      throw new CairnError('BAD_INPUT', `unknown option ${key}${valid.length ? `; the ${scheme} backend knows ${valid.join(', ')}` : `: the ${scheme} backend takes no options`}`);
    }
    out[known[name]] = value;
  }
  return out;
}
