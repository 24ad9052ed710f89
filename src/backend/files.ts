/**
 * What every backend does alike with repository files: checks names, lays them out as restic
 * does, checks byte ranges and cancellation, and names files in messages.
 */
import { createHash } from 'node:crypto';
import { CairnError } from '../errors.js';
import type { FileType, Handle } from './backend.js';

/** restic's folder for each type of file (the config file sits at the top). */
export const FOLDERS: Readonly<Record<Exclude<FileType, 'config'>, string>> = Object.freeze({
  key: 'keys',
  lock: 'locks',
  snapshot: 'snapshots',
  index: 'index',
  data: 'data',
});

export const ID = /^[0-9a-f]{64}$/;

/**
 * Where `h` lives relative to a repository's root in restic's default layout, with `/` between
 * parts: `config`, `keys/<id>`, `locks/<id>`, `snapshots/<id>`, `index/<id>`,
 * `data/<first two hex chars>/<id>`. Throws `BAD_INPUT` for a name that is not a 64-character
 * lowercase hex id (or not '' for config), which also keeps a name from reaching outside the
 * repository.
 */
export function handleKey(h: Handle): string {
  if (h.type === 'config') {
    if (h.name !== '') throw new CairnError('BAD_INPUT', `the config file has no name, got ${JSON.stringify(h.name)}`);
    return 'config';
  }
  if (!Object.hasOwn(FOLDERS, h.type)) throw new CairnError('BAD_INPUT', `unknown file type ${JSON.stringify(h.type)}`);
  if (!ID.test(h.name)) throw new CairnError('BAD_INPUT', `invalid ${h.type} file name ${JSON.stringify(h.name)}: expected 64 lowercase hex characters`);
  if (h.type === 'data') return `data/${h.name.slice(0, 2)}/${h.name}`;
  return `${FOLDERS[h.type]}/${h.name}`;
}

/** `h` as messages name it: "the config file", "data file 0123…". */
export function label(h: Handle): string {
  return h.type === 'config' ? 'the config file' : `${h.type} file ${h.name}`;
}

export function checkAborted(signal: AbortSignal | undefined, doing: string): void {
  if (signal?.aborted) throw new CairnError('INTERRUPTED', `${doing} was interrupted`);
}

/** `BAD_INPUT` unless `offset` and `length` are whole, non-negative byte counts. */
export function checkRange(h: Handle, offset: number, length: number | undefined): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
    throw new CairnError('BAD_INPUT', `invalid range for ${label(h)}: offset ${offset}, length ${length}`);
  }
}

/** The `INTEGRITY` error for a range that reaches past the end of a file of `size` bytes. */
export function tooShort(h: Handle, where: string, size: number, offset: number, length: number | undefined): CairnError {
  const asked = length === undefined ? `reading from offset ${offset}` : `${length} bytes at offset ${offset}`;
  return new CairnError('INTEGRITY', `${label(h)} in ${where} has only ${size} bytes, too few for ${asked}`);
}

/**
 * Whether saving `data` under `h` may replace a file of `size` bytes there with other content:
 * every name but `config` is the hash of its content, so when `data` hashes to the name, the file
 * there does not, and is the leftover of a save that failed half way (a server that keeps what it
 * had received when its disk filled up) or damage; `data` is what belongs there. restic's backends
 * write over such a file alike. An empty `config` is such a leftover too (of an `init` that failed:
 * no repository has an empty config, see `exists`). Any other content under a name stays refused
 * (`BAD_INPUT`).
 */
export function replacesLeftover(h: Handle, data: Uint8Array, size: number): boolean {
  if (h.type === 'config') return size === 0;
  return createHash('sha256').update(data).digest('hex') === h.name;
}
