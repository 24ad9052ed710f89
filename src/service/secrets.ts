/**
 * Secrets the daemon generates at first start (the API token, the repository password), each in a
 * 0600 file in the data folder, and the constant-time comparison the API checks tokens with.
 */
import { randomBytes } from 'node:crypto';
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

export { readSecretFile, sameSecret } from '../util/secret-file.js';
