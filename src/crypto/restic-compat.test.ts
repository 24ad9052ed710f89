/**
 * Checks the crypto layer against the real `restic` binary: opening what restic wrote, and
 * restic opening what Cairn wrote.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Key, type MasterKeyJSON } from './crypto.js';
import { deriveUserKey, SALT_SIZE } from './kdf.js';
import { HAVE_RESTIC } from '../../test/support/tools.js';

const run = promisify(execFile);

interface KeyFile {
  N: number;
  r: number;
  p: number;
  salt: string;
  data: string;
}

describe.runIf(HAVE_RESTIC)('restic compatibility', () => {
  const password = `pw-${randomBytes(6).toString('hex')} ünïcode`;
  let dir: string;
  let repo: string;
  let env: NodeJS.ProcessEnv;

  /** Runs restic against the temp repository; the password only ever travels in a file. */
  async function restic(...args: string[]): Promise<string> {
    const { stdout } = await run('restic', ['--no-cache', '--quiet', ...args], { env, maxBuffer: 1 << 20 });
    return stdout;
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cairn-restic-'));
    repo = path.join(dir, 'repo');
    await writeFile(path.join(dir, 'password'), password, { mode: 0o600 });
    env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RESTIC_')));
    Object.assign(env, {
      RESTIC_REPOSITORY: repo,
      RESTIC_PASSWORD_FILE: path.join(dir, 'password'),
      RESTIC_CACHE_DIR: path.join(dir, 'cache'),
    });
    await restic('init', '--repository-version', '2');
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let masterKey: Promise<Key> | undefined;
  /** The master key from restic's key file, derived once: scrypt with restic's calibrated cost is slow. */
  function openResticKey(): Promise<Key> {
    masterKey ??= loadResticKey();
    return masterKey;
  }

  async function loadResticKey(): Promise<Key> {
    const [keyId] = await readdir(path.join(repo, 'keys'));
    const keyFile = JSON.parse(await readFile(path.join(repo, 'keys', keyId), 'utf8')) as KeyFile;
    const user = await deriveUserKey(password, Buffer.from(keyFile.salt, 'base64'), keyFile);
    return Key.fromJSON(JSON.parse(user.decrypt(Buffer.from(keyFile.data, 'base64')).toString('utf8')) as MasterKeyJSON);
  }

  it('derives the user key, decrypts the master key and matches `restic cat masterkey`', async () => {
    const master = await openResticKey();
    const printed = JSON.parse(await restic('cat', 'masterkey')) as MasterKeyJSON;
    expect(master.toJSON()).toEqual(printed);
  });

  it('decrypts the config with the master key and matches `restic cat config`', async () => {
    const master = await openResticKey();
    const config = JSON.parse(master.decrypt(await readFile(path.join(repo, 'config'))).toString('utf8')) as {
      version: number;
    };
    expect(config.version).toBe(2);
    expect(config).toEqual(JSON.parse(await restic('cat', 'config')));
  });

  it('writes a config restic can read', async () => {
    const master = await openResticKey();
    const configPath = path.join(repo, 'config');
    const before = await restic('cat', 'config');
    const plain = master.decrypt(await readFile(configPath));
    const resealed = master.encrypt(plain);
    expect(resealed.equals(await readFile(configPath))).toBe(false);
    await unlink(configPath);
    await writeFile(configPath, resealed, { mode: 0o400 });
    expect(JSON.parse(await restic('cat', 'config'))).toEqual(JSON.parse(before));
  });

  it('writes a key file restic can open with a second password', async () => {
    const master = await openResticKey();
    const secondPassword = `second-${randomBytes(6).toString('hex')}`;
    const salt = randomBytes(SALT_SIZE);
    const params = { N: 1024, r: 8, p: 1 };
    const user = await deriveUserKey(secondPassword, salt, params);
    const keyFile = {
      created: new Date().toISOString(),
      username: 'cairn-test',
      hostname: 'cairn-test',
      kdf: 'scrypt',
      ...params,
      salt: salt.toString('base64'),
      data: user.encrypt(Buffer.from(JSON.stringify(master.toJSON()))).toString('base64'),
    };
    const bytes = Buffer.from(JSON.stringify(keyFile));
    await writeFile(path.join(repo, 'keys', createHash('sha256').update(bytes).digest('hex')), bytes);

    const secondPasswordFile = path.join(dir, 'password2');
    await writeFile(secondPasswordFile, secondPassword, { mode: 0o600 });
    const previous = env.RESTIC_PASSWORD_FILE;
    env.RESTIC_PASSWORD_FILE = secondPasswordFile;
    try {
      expect(JSON.parse(await restic('cat', 'masterkey'))).toEqual(master.toJSON());
    } finally {
      env.RESTIC_PASSWORD_FILE = previous;
    }
  });
});
