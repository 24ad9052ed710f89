import { scryptSync } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CairnError } from '../errors.js';
import { Key, type MasterKeyJSON } from './crypto.js';
import { checkKdfParams, deriveUserKey, SALT_SIZE } from './kdf.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function expectBadInput(fn: () => unknown): void {
  expect(fn).toThrow(CairnError);
  try {
    fn();
  } catch (err) {
    expect((err as CairnError).code).toBe('BAD_INPUT');
  }
}

/**
 * Written by `restic init --repository-version 2` (restic 0.14.0) with password "secret pw";
 * the expected values are what `restic cat masterkey` / `restic cat config` printed.
 */
const RESTIC_KEY_FILE = {
  kdf: 'scrypt',
  N: 32768,
  r: 8,
  p: 8,
  salt: 'OMKZqqFYmo6IpdydkVGzSZ7FXRuzTgTfXkEZiHesnT6bzfqWuAO9J5PTvzYLafnd12DCMq21OZH2XnmWDZvHbQ==',
  data:
    'o0SPo+wMLKaa2N46NAMWjWq2hONPXtXiLtLSNCiEnl2AlG+7l284W5qBA4n29K5JfgZ1Hby1IerfZxiUgY1ApkwReo55e3qXXEZt0pJ92Xm3' +
    'LgOlk9M9hzs8tKeWFOAWQBcxkYP+Xp8amFVKHt/QF13h+WdfZ/cgGyhCQDmheWCCx//dGG6uJp4JoUGvU+WQS5kcLCxLSRFHfLYUrf+E9Q==',
};
const RESTIC_MASTER_KEY: MasterKeyJSON = {
  mac: { k: 'PMrvKJqHfbClOZdq1cT+ZQ==', r: 'tTGpAMzLJA+QV48CTDV0BQ==' },
  encrypt: 'WAP9D7D5IV9MVQm/tlPniII0uEWmYCZHnZM68u5rUbU=',
};
const RESTIC_CONFIG_FILE =
  'tw1xHqkXJNeOBUeJTY+7Ww/qM1EJuiz/68botQ2egTqxCpdsAyYiLnne+WZqT86XO9ma0pXN/vuMhNfetQn+YiYNbdqjWZqYj3zdUxPwBngGuz7i' +
  'Nar//fWfeTvr9q/Gd3V9HzhZm6F50Np5QUPFlpLlTSbkujvyUE/AjZdJTeo4bO4tKD3ivlL5ldgUj1EuFSAYwhhCGNp9lZA=';
const RESTIC_CONFIG = {
  version: 2,
  id: 'ed18e7c8c313f885ba138e0264beb90b93796a938842ca42350f5b3afda5af98',
  chunker_polynomial: '2a97583343d173',
};

describe('deriveUserKey', () => {
  it('splits scrypt output into encrypt (32) || mac.k (16) || mac.r (16) (RFC 7914 vector)', async () => {
    const key = await deriveUserKey('password', Buffer.from('NaCl'), { N: 1024, r: 8, p: 16 });
    const raw = key.raw;
    expect(hex(raw.encrypt)).toBe('fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162');
    expect(hex(raw.macK)).toBe('2eaf30d92e22a3886ff109279d9830da');
    expect(hex(raw.macR)).toBe('c727afb94a83ee6d8360cbdfa2cc0640');
  });

  it('opens a key file written by restic and decrypts its config', async () => {
    const user = await deriveUserKey('secret pw', Buffer.from(RESTIC_KEY_FILE.salt, 'base64'), RESTIC_KEY_FILE);
    const master = JSON.parse(user.decrypt(Buffer.from(RESTIC_KEY_FILE.data, 'base64')).toString('utf8')) as MasterKeyJSON;
    expect(master).toEqual(RESTIC_MASTER_KEY);
    const config = Key.fromJSON(master).decrypt(Buffer.from(RESTIC_CONFIG_FILE, 'base64'));
    expect(JSON.parse(config.toString('utf8'))).toEqual(RESTIC_CONFIG);
  });

  it('yields a key that fails MAC verification for a wrong password', async () => {
    const user = await deriveUserKey('wrong pw', Buffer.from(RESTIC_KEY_FILE.salt, 'base64'), RESTIC_KEY_FILE);
    expect(() => user.decrypt(Buffer.from(RESTIC_KEY_FILE.data, 'base64'))).toThrow(/ciphertext verification failed/);
  });

  it('feeds scrypt the password as UTF-8, like Go\'s []byte(string)', async () => {
    const salt = Buffer.alloc(SALT_SIZE, 1);
    const params = { N: 16, r: 1, p: 1 };
    const raw = (await deriveUserKey('pässwörd 🔑', salt, params)).raw;
    const expected = scryptSync(Buffer.from('pässwörd 🔑', 'utf8'), salt, 64, params);
    expect(hex(Buffer.concat([raw.encrypt, raw.macK, raw.macR]))).toBe(hex(expected));
  });

  it('refuses hostile parameters before running scrypt', async () => {
    await expect(deriveUserKey('pw', Buffer.alloc(SALT_SIZE), { N: 2 ** 21, r: 8, p: 1 })).rejects.toMatchObject({
      code: 'BAD_INPUT',
    });
  });
});

describe('checkKdfParams', () => {
  it('accepts restic-like parameters', () => {
    for (const params of [
      { N: 32768, r: 8, p: 1 },
      { N: 32768, r: 8, p: 8 },
      { N: 2 ** 20, r: 8, p: 1 },
      { N: 2, r: 1, p: 1 },
    ]) {
      expect(() => checkKdfParams(params)).not.toThrow();
    }
  });

  it('rejects N that is not a power of two in [2, 2^20], bad r or p, and excessive cost', () => {
    for (const params of [
      { N: 0, r: 8, p: 1 },
      { N: 1, r: 8, p: 1 },
      { N: 3, r: 8, p: 1 },
      { N: 1000, r: 8, p: 1 },
      { N: 2 ** 21, r: 8, p: 1 },
      { N: 1.5, r: 8, p: 1 },
      { N: Number.NaN, r: 8, p: 1 },
      { N: 1024, r: 0, p: 1 },
      { N: 1024, r: 8, p: 0 },
      { N: 1024, r: 8.5, p: 1 },
      { N: 1024, r: 8, p: -1 },
      { N: 2 ** 20, r: 16, p: 1 },
      { N: 2 ** 20, r: 8, p: 1024 },
      { N: 1024, r: 2 ** 20, p: 1 },
      { N: '1024', r: 8, p: 1 } as never,
    ]) {
      expectBadInput(() => checkKdfParams(params));
    }
  });
});

describe('DEFAULT_KDF', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('is N=32768, r=8, p=1 unless CAIRN_KDF_N says otherwise', async () => {
    vi.stubEnv('CAIRN_KDF_N', '');
    vi.resetModules();
    expect((await import('./kdf.js')).DEFAULT_KDF).toEqual({ N: 32768, r: 8, p: 1 });
  });

  it('takes N from CAIRN_KDF_N', async () => {
    vi.stubEnv('CAIRN_KDF_N', '1024');
    vi.resetModules();
    expect((await import('./kdf.js')).DEFAULT_KDF).toEqual({ N: 1024, r: 8, p: 1 });
  });

  it('refuses a CAIRN_KDF_N that is not a power of two', async () => {
    for (const bad of ['1000', 'abc', '-2', '0x400']) {
      vi.stubEnv('CAIRN_KDF_N', bad);
      vi.resetModules();
      await expect(import('./kdf.js'), bad).rejects.toMatchObject({ code: 'BAD_INPUT' });
    }
  });
});
