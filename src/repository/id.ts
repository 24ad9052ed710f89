import { createHash, randomBytes } from 'node:crypto';
import { CairnError } from '../errors.js';

/** A restic id: 32 bytes, written as 64 lowercase hex characters. */
export type Id = string;

export const ID_PATTERN = /^[0-9a-f]{64}$/;

export function hashId(data: Uint8Array): Id {
  return createHash('sha256').update(data).digest('hex');
}

export function randomId(): Id {
  return randomBytes(32).toString('hex');
}

export function parseId(s: string): Id {
  if (!ID_PATTERN.test(s)) throw new CairnError('BAD_INPUT', `invalid id ${JSON.stringify(s)}: expected 64 hex characters`);
  return s;
}

export function shortId(id: Id): string {
  return id.slice(0, 8);
}
