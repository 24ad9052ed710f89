/**
 * restic's password-based key derivation: scrypt(password, salt, N, r, p) -> 64 bytes, split
 * into the AES-256 key (32), the Poly1305-AES k (16) and r (16) of the user key that opens a
 * key file's sealed master key.
 */
import { scrypt } from 'node:crypto';
import { CairnError } from '../errors.js';
import { Key } from './crypto.js';

/** scrypt cost parameters as stored in a key file. */
export interface KdfParams {
  N: number;
  r: number;
  p: number;
}

/** Length of the salt restic writes into key files (and insists on when it opens one). */
export const SALT_SIZE = 64;

const MAX_N = 2 ** 20;
/** scrypt needs about 128·N·r bytes; cap it so a hostile key file cannot exhaust memory. */
const MAX_MEMORY = 2 ** 30;
/** Caps total work (N·r·p): restic calibrates p upwards (p = 8 at N = 2^15, r = 8 here), this leaves 32 times that. */
const MAX_WORK = 2 ** 26;

/**
 * Parameters for new keys. restic calibrates N on the machine; Cairn uses N = 32768, r = 8,
 * p = 1. The environment variable CAIRN_KDF_N replaces N (a power of two) when the module
 * loads, so tests can create keys cheaply; it is read once and validated like any key file.
 */
export const DEFAULT_KDF: KdfParams = defaultKdf(process.env.CAIRN_KDF_N);

function defaultKdf(envN: string | undefined): KdfParams {
  const params = { N: 32768, r: 8, p: 1 };
  if (envN !== undefined && envN !== '') {
    if (!/^[0-9]+$/.test(envN)) throw new CairnError('BAD_INPUT', `CAIRN_KDF_N must be a power of two, got "${envN}"`);
    params.N = Number(envN);
  }
  checkKdfParams(params);
  return params;
}

/** `BAD_INPUT` unless N is a power of two in [2, 2^20], r and p are positive and the cost is bounded. */
export function checkKdfParams(params: KdfParams): void {
  const { N, r, p } = params;
  if (!Number.isSafeInteger(N) || N < 2 || N > MAX_N || (N & (N - 1)) !== 0) {
    throw new CairnError('BAD_INPUT', `scrypt N must be a power of two between 2 and ${MAX_N}, got ${N}`);
  }
  if (!Number.isSafeInteger(r) || r < 1 || !Number.isSafeInteger(p) || p < 1) {
    throw new CairnError('BAD_INPUT', `scrypt r and p must be positive integers, got r=${r} p=${p}`);
  }
  if (128 * N * r > MAX_MEMORY) {
    throw new CairnError('BAD_INPUT', `scrypt parameters N=${N} r=${r} need more than ${MAX_MEMORY / 2 ** 20} MiB`);
  }
  if (N * r * p > MAX_WORK) {
    throw new CairnError('BAD_INPUT', `scrypt parameters N=${N} r=${r} p=${p} are too costly`);
  }
}

/**
 * Derives the user key from `password` (UTF-8, as restic's Go string conversion) and a key
 * file's salt and parameters. Runs scrypt on libuv's thread pool.
 */
export async function deriveUserKey(password: string, salt: Uint8Array, params: KdfParams): Promise<Key> {
  checkKdfParams(params);
  const { N, r, p } = params;
  // OpenSSL's own accounting: 128·r·(N + 2) for V plus 128·r·p for B.
  const maxmem = 128 * r * (N + p + 2) + 2 ** 20;
  const out = await new Promise<Buffer>((resolve, reject) => {
    scrypt(password, salt, 64, { N, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
  try {
    return Key.fromRaw({ encrypt: out.subarray(0, 32), macK: out.subarray(32, 48), macR: out.subarray(48, 64) });
  } finally {
    out.fill(0);
  }
}
