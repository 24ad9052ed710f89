import { CairnError } from '../errors.js';

/** Parses a size as restic writes them: bytes, or a number with K, M, G or T (powers of 1024); null when it is not one. */
export function parseSize(s: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)[bB]?$/.exec(s.trim());
  if (!m) return null;
  return Math.floor(Number(m[1]) * 1024 ** ' kmgt'.indexOf(m[2].toLowerCase() || ' '));
}

/** Like parseSize, with an error that names the option when the text is not a size. */
export function requireSize(s: string, option: string): number {
  const n = parseSize(s);
  if (n === null) throw new CairnError('BAD_INPUT', `invalid ${option} ${JSON.stringify(s)}: use a size such as 500M, 2G or 1048576`);
  return n;
}
