/** Reading secrets from files, and comparing them, the same way everywhere. */
import { createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { CairnError } from '../errors.js';

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot read ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Go's unicode.IsSpace characters at either end, which strings.TrimSpace removes. */
const GO_TRIM = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/gu;

/**
 * A password file as restic reads it: the whole file with white space trimmed from both ends (Go's
 * strings.TrimSpace), so that restic and Cairn open a repository with the same file.
 */
export function readPasswordFile(file: string, what = 'password'): string {
  return readText(file, what).replace(GO_TRIM, '');
}

/**
 * The passwords a password file may stand for, to try in turn: restic's reading (readPasswordFile),
 * then, when it differs, the file's first line exactly, as earlier versions of Cairn read them:
 * keys made from such a file with spaces around the password, or a second line, open that way only.
 */
export function passwordFileCandidates(file: string, what = 'password'): string[] {
  const text = readText(file, what);
  const restic = text.replace(GO_TRIM, '');
  const firstLine = text.split(/\r?\n/)[0];
  return firstLine === restic ? [restic] : [restic, firstLine];
}

/** A token or URL from a file: the first line, trimmed, and not empty. */
export function readSecretFile(file: string, what: string): string {
  const line = readText(file, what).split(/\r?\n/)[0].trim();
  if (line === '') throw new CairnError('BAD_INPUT', `${what} file ${file} is empty`);
  return line;
}

/** Compares two secrets in time independent of where they differ (and of their lengths). */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
