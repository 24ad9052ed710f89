import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { CairnError } from '../errors.js';
import { Key, type MasterKeyJSON } from '../crypto/crypto.js';
import { DEFAULT_KDF, SALT_SIZE, deriveUserKey, type KdfParams } from '../crypto/kdf.js';
import type { Backend } from '../backend/backend.js';
import { formatTime } from '../fs/time.js';
import { hashId, type Id } from './id.js';

/** A key file under `keys/`: plain JSON holding scrypt parameters and the sealed master key. */
export interface KeyFileJSON {
  created: string;
  username: string;
  hostname: string;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  data: string;
}

export interface KeyInfo {
  id: Id;
  created: string;
  username: string;
  hostname: string;
}

/** Seals `master` under `password` into a new key file and saves it; returns the key file's id. */
export async function addKey(backend: Backend, master: Key, password: string, params: KdfParams = DEFAULT_KDF): Promise<Id> {
  const salt = randomBytes(SALT_SIZE);
  const user = await deriveUserKey(password, salt, params);
  const data = user.encrypt(Buffer.from(JSON.stringify(master.toJSON()), 'utf8'));
  const file: KeyFileJSON = {
    created: formatTime(BigInt(Date.now()) * 1_000_000n),
    username: safeUsername(),
    hostname: os.hostname(),
    kdf: 'scrypt',
    N: params.N,
    r: params.r,
    p: params.p,
    salt: salt.toString('base64'),
    data: data.toString('base64'),
  };
  const bytes = Buffer.from(JSON.stringify(file), 'utf8');
  const id = hashId(bytes);
  await backend.save({ type: 'key', name: id }, bytes);
  return id;
}

function safeUsername(): string {
  try {
    return os.userInfo().username;
  } catch {
    return '';
  }
}

export function parseKeyFile(bytes: Buffer, id: Id): KeyFileJSON {
  let j: KeyFileJSON;
  try {
    j = JSON.parse(bytes.toString('utf8')) as KeyFileJSON;
  } catch {
    throw new CairnError('INTEGRITY', `key ${id} is not valid JSON`);
  }
  if (j.kdf !== 'scrypt' || typeof j.salt !== 'string' || typeof j.data !== 'string') {
    throw new CairnError('INTEGRITY', `key ${id} is not a scrypt key file`);
  }
  return j;
}

/** Opens a key file with `password`; null when the password does not fit this key. */
export async function openKeyFile(j: KeyFileJSON, password: string): Promise<Key | null> {
  const user = await deriveUserKey(password, Buffer.from(j.salt, 'base64'), { N: j.N, r: j.r, p: j.p });
  let plain: Buffer;
  try {
    plain = user.decrypt(Buffer.from(j.data, 'base64'));
  } catch {
    return null;
  }
  return Key.fromJSON(JSON.parse(plain.toString('utf8')) as MasterKeyJSON);
}

/**
 * Finds the key file `password` opens and returns the master key. Tries key files one by one
 * (scrypt makes each try slow on purpose); `WRONG_PASSWORD` when none fits.
 */
export async function openMasterKey(backend: Backend, password: string): Promise<{ key: Key; keyId: Id }> {
  const { opened, listed } = await searchKeys(backend, password);
  if (opened) return opened;
  if (listed === 0) throw new CairnError('INTEGRITY', `repository at ${backend.location} has no key files`);
  throw new CairnError('WRONG_PASSWORD', 'wrong password or no key found: the password opens none of the repository\'s keys');
}

/**
 * The first key file that `password` opens, with how many key files are listed and how many of
 * those parse (key files that do not, or whose scrypt parameters are hostile or broken, are skipped).
 */
async function searchKeys(backend: Backend, password: string): Promise<{ opened: { key: Key; keyId: Id } | null; listed: number; parsed: number }> {
  const ids: Id[] = [];
  for await (const f of backend.list('key')) ids.push(f.name);
  let parsed = 0;
  for (const id of ids) {
    let j: KeyFileJSON;
    try {
      j = parseKeyFile(await backend.load({ type: 'key', name: id }), id);
    } catch (err) {
      if (err instanceof CairnError && err.code === 'INTEGRITY') continue;
      throw err;
    }
    parsed++;
    let key: Key | null;
    try {
      key = await openKeyFile(j, password);
    } catch (err) {
      // A key file with hostile or broken scrypt parameters is skipped, not fatal.
      if (err instanceof CairnError && err.code === 'BAD_INPUT') continue;
      throw err;
    }
    if (key) return { opened: { key, keyId: id }, listed: ids.length, parsed };
  }
  return { opened: null, listed: ids.length, parsed };
}

/**
 * The master key of a repository whose `init` failed after its key was saved (its config did not
 * fit on a full server): the key that `password` opens among the key files there, to be taken up
 * again, so that the repository ends with one master key, as after an init that succeeded. Null
 * when there is no key file that parses (none, or only empty leftovers of saves cut short). Key
 * files that parse but that the password does not open belong to someone else's failed init, or
 * to a repository whose config is lost: `REPO_EXISTS`, since a new master key beside them would
 * leave two that open with their passwords and only one that reads the config.
 */
export async function leftoverMasterKey(backend: Backend, password: string): Promise<{ key: Key; keyId: Id } | null> {
  const { opened, parsed } = await searchKeys(backend, password);
  if (opened || parsed === 0) return opened;
  throw new CairnError(
    'REPO_EXISTS',
    `${backend.location} has no config but ${parsed} key ${parsed === 1 ? 'file' : 'files'} this password does not open: what an init with another password left when it failed, or a repository whose config is lost. Run init with that password to finish it, or remove the key files if nothing else is there`,
  );
}

export async function listKeys(backend: Backend): Promise<KeyInfo[]> {
  const out: KeyInfo[] = [];
  for await (const f of backend.list('key')) {
    const j = parseKeyFile(await backend.load({ type: 'key', name: f.name }), f.name);
    out.push({ id: f.name, created: j.created, username: j.username, hostname: j.hostname });
  }
  return out.sort((a, b) => a.created.localeCompare(b.created));
}
