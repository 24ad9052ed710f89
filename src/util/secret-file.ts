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

/** A password file as restic reads it: the first line, exactly (spaces are part of a password). */
export function readPasswordFile(file: string, what = 'password'): string {
  return readText(file, what).split(/\r?\n/)[0];
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
