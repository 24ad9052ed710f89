import { randomBytes } from 'node:crypto';
import { CairnError } from '../errors.js';
import { polynomialFromHex, polynomialToHex, randomPolynomial } from '../chunker/polynomial.js';
import type { Key } from '../crypto/crypto.js';
import { decodeUnpacked, encodeUnpacked, parseJSON } from './unpacked.js';

/** The repository's `config` file. */
export interface ConfigJSON {
  version: number;
  id: string;
  chunker_polynomial: string;
}

export interface RepoConfig {
  readonly version: 1 | 2;
  readonly id: string;
  readonly polynomial: bigint;
}

/** A new repository's config: a random id and, unless given (another repository's, see init --copy-chunker-params), a random polynomial. */
export function newConfig(version: 1 | 2 = 2, polynomial: bigint = randomPolynomial()): RepoConfig {
  return { version, id: randomBytes(32).toString('hex'), polynomial };
}

export function configToJSON(c: RepoConfig): ConfigJSON {
  return { version: c.version, id: c.id, chunker_polynomial: polynomialToHex(c.polynomial) };
}

export function configFromJSON(j: ConfigJSON): RepoConfig {
  if (j.version !== 1 && j.version !== 2) {
    throw new CairnError('BAD_INPUT', `unsupported repository version ${j.version}: Cairn reads versions 1 and 2`);
  }
  if (typeof j.id !== 'string' || j.id.length === 0) throw new CairnError('INTEGRITY', 'config has no repository id');
  return { version: j.version, id: j.id, polynomial: polynomialFromHex(j.chunker_polynomial) };
}

/** The `config` file's bytes for `c`: its JSON, uncompressed, encrypted with the master key. */
export function sealConfig(key: Key, c: RepoConfig): Buffer {
  return key.encrypt(encodeUnpacked(JSON.stringify(configToJSON(c)), false));
}

/** The config in a `config` file's bytes; `INTEGRITY` when they fail verification with `key`. */
export function openConfig(key: Key, sealed: Buffer): RepoConfig {
  let raw: Buffer;
  try {
    raw = key.decrypt(sealed);
  } catch (err) {
    if (err instanceof CairnError && err.code === 'INTEGRITY') throw new CairnError('INTEGRITY', 'the config file fails verification: it is damaged or belongs to another repository');
    throw err;
  }
  return configFromJSON(parseJSON<ConfigJSON>(decodeUnpacked(raw, 'config'), 'config'));
}
