import { CairnError } from '../errors.js';

/**
 * Parses a byte size as people write it: `1048576`, `512K`, `100M`, `2G`, `1T`, with an optional
 * `B`, `iB` suffix (`2GiB`, `10MB`). Units are binary (K = 1024) as in restic's flags.
 */
export function parseSize(s: string, what = 'size'): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB])?$/.exec(s.trim());
  if (!m || (m[3] !== undefined && m[3].length === 2 && m[2] === '')) {
    throw new CairnError('BAD_INPUT', `invalid ${what} ${JSON.stringify(s)}: use bytes or a number with K, M, G or T (e.g. 2G)`);
  }
  const bytes = Math.floor(Number(m[1]) * 1024 ** ' kmgt'.indexOf(m[2].toLowerCase() || ' '));
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new CairnError('BAD_INPUT', `invalid ${what} ${JSON.stringify(s)}: must be positive`);
  return bytes;
}
