import fs from 'node:fs/promises';
import { CairnError } from '../../errors.js';
import type { DbLocation } from './url.js';

/**
 * Fills in a location's password when its URL has none: from `passwordFile` (first line), else
 * from CAIRN_DB_PASSWORD. The URL's own password wins, so several --db can carry their own.
 */
export async function withPassword(loc: DbLocation, passwordFile?: string): Promise<DbLocation> {
  if (loc.password !== undefined || loc.engine === 'sqlite') return loc;
  if (passwordFile) {
    const text = await fs.readFile(passwordFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CairnError('BAD_INPUT', `cannot read --db-password-file ${passwordFile}: ${err.code ?? err.message}`);
    });
    return { ...loc, password: text.split(/\r?\n/)[0] };
  }
  const env = process.env.CAIRN_DB_PASSWORD;
  return env === undefined ? loc : { ...loc, password: env };
}
