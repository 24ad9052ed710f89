import crypto, { createHash, randomBytes } from 'node:crypto';
import { CairnError } from '../errors.js';

/** A restic id: 32 bytes, written as 64 lowercase hex characters. */
export type Id = string;

export const ID_PATTERN = /^[0-9a-f]{64}$/;

/** Node 20.12's one-shot hash: a third cheaper than a Hash object for the few-KiB blobs of trees and small files. */
const oneShot = (crypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'hex') => string }).hash;

/** The SHA-256 of `data` as an id. */
export function hashId(data: Uint8Array): Id {
  return oneShot ? oneShot('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex');
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
