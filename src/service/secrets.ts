/**
 * Secrets the daemon generates at first start (the API token, the repository password), each in a
 * 0600 file in the data folder, and the constant-time comparison the API checks tokens with.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { CairnError } from '../errors.js';

/** Creates `file` with a random secret unless it exists; returns whether it was created. Exits with the secret never shown. */
export function ensureSecretFile(file: string): boolean {
  try {
    fs.writeFileSync(file, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new CairnError('BAD_INPUT', `cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The first line of a secret file. */
export function readSecretFile(file: string, what: string): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot read the ${what} from ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const secret = text.split(/\r?\n/)[0].trim();
  if (!secret) throw new CairnError('BAD_INPUT', `${file} holds no ${what}`);
  return secret;
}

/** Compares two secrets in time independent of where they differ (and of their lengths). */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}
