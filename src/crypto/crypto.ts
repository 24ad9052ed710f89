/**
 * restic's authenticated encryption: AES-256-CTR, then Poly1305-AES over the ciphertext.
 * Sealed data is IV || CIPHERTEXT || MAC (see restic's doc/design.rst, "Keys, Encryption and MAC").
 */
import { createCipheriv, randomBytes, randomFillSync, timingSafeEqual, type Cipher } from 'node:crypto';
import { CairnError } from '../errors.js';
import { poly1305Into } from './poly1305.js';
import { madeGarbage } from '../util/gc.js';

/** Bytes of the random IV that starts every sealed message. */
export const IV_SIZE = 16;
/** Bytes of the Poly1305 tag that ends every sealed message. */
export const MAC_SIZE = 16;
/** How many bytes sealing adds to a plaintext. */
export const CRYPTO_OVERHEAD = IV_SIZE + MAC_SIZE;

const ENCRYPT_KEY_SIZE = 32;
const MAC_KEY_SIZE = 16;
/**
 * Slices of 64 KiB: Node's update() returns a fresh buffer per call, and glibc serves 64 KiB from
 * its arena but larger ones from fresh mmap()ed pages that fault in and are unmapped again
 * (64 KiB measured 4.2 GiB/s, 256 KiB 2.9, a whole 1 MiB blob 1.0).
 */
const CTR_SLICE = 64 * 1024;

/** The master key as restic stores it in a key file and as `restic cat masterkey` prints it (base64 fields). */
export interface MasterKeyJSON {
  mac: { k: string; r: string };
  encrypt: string;
}

/** Raw key bytes: structured-cloneable, so a key can be posted to worker threads. */
export interface KeyRaw {
  /** AES-256 key for CTR mode, 32 bytes. */
  encrypt: Uint8Array;
  /** AES-128 key that turns each IV into the Poly1305 `s` half, 16 bytes. */
  macK: Uint8Array;
  /** Poly1305 `r` half, 16 bytes; stored unclamped like restic does, clamped when used. */
  macR: Uint8Array;
}

/** An encryption key plus Poly1305-AES key, used for both master keys and password-derived user keys. */
export class Key {
  readonly #encrypt: Buffer;
  readonly #macK: Buffer;
  readonly #macR: Buffer;
  /** ECB has no chaining state, so one cipher object serves every nonce this key ever sees. */
  readonly #nonceCipher: Cipher;
  /** Poly1305 one-time key r || s; r is fixed, s is rewritten per message. Safe to share: use is synchronous. */
  readonly #polyKey = Buffer.alloc(32);
  readonly #tag = Buffer.alloc(MAC_SIZE);

  private constructor(encrypt: Uint8Array, macK: Uint8Array, macR: Uint8Array) {
    checkKeyBytes('encryption key', encrypt, ENCRYPT_KEY_SIZE);
    checkKeyBytes('MAC key k', macK, MAC_KEY_SIZE);
    checkKeyBytes('MAC key r', macR, MAC_KEY_SIZE);
    this.#encrypt = Buffer.from(encrypt);
    this.#macK = Buffer.from(macK);
    this.#macR = Buffer.from(macR);
    this.#nonceCipher = createCipheriv('aes-128-ecb', this.#macK, null);
    this.#nonceCipher.setAutoPadding(false);
    this.#macR.copy(this.#polyKey, 0);
  }

  /** A fresh random key, as for `restic init`. */
  static random(): Key {
    return new Key(randomBytes(ENCRYPT_KEY_SIZE), randomBytes(MAC_KEY_SIZE), randomBytes(MAC_KEY_SIZE));
  }

  /** Parses a decrypted master key; `BAD_INPUT` when fields are missing or have the wrong length. */
  static fromJSON(j: MasterKeyJSON): Key {
    const mac: unknown = j?.mac;
    if (
      typeof j?.encrypt !== 'string' ||
      typeof mac !== 'object' ||
      mac === null ||
      typeof (mac as { k?: unknown }).k !== 'string' ||
      typeof (mac as { r?: unknown }).r !== 'string'
    ) {
      throw new CairnError('BAD_INPUT', 'master key JSON must have string fields "encrypt", "mac.k" and "mac.r"');
    }
    return new Key(
      Buffer.from(j.encrypt, 'base64'),
      Buffer.from(j.mac.k, 'base64'),
      Buffer.from(j.mac.r, 'base64'),
    );
  }

  /** Builds a key from raw bytes (copied), e.g. as received by a worker thread. */
  static fromRaw(raw: KeyRaw): Key {
    return new Key(raw.encrypt, raw.macK, raw.macR);
  }

  /** The JSON restic stores (sealed) in key files; field order matches restic's output. */
  toJSON(): MasterKeyJSON {
    return {
      // r masked, as restic generates and prints it; Poly1305 clamps r anyway, so no MAC changes.
      mac: { k: this.#macK.toString('base64'), r: clampR(Buffer.from(this.#macR)).toString('base64') },
      encrypt: this.#encrypt.toString('base64'),
    };
  }

  /** Copies of the key bytes. */
  get raw(): KeyRaw {
    return {
      encrypt: new Uint8Array(this.#encrypt),
      macK: new Uint8Array(this.#macK),
      macR: new Uint8Array(this.#macR),
    };
  }

  /** Seals `plaintext` under a fresh random IV; returns IV || CIPHERTEXT || MAC. */
  encrypt(plaintext: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(plaintext.length + CRYPTO_OVERHEAD);
    this.encryptInto(plaintext, out, 0);
    return out;
  }

  /**
   * Seals `plaintext` as IV || CIPHERTEXT || MAC straight into `out` at `offset` (which must have
   * room for plaintext.length + 32 bytes), so a pack can be built in one reused buffer; returns the
   * sealed length.
   */
  encryptInto(plaintext: Uint8Array, out: Buffer, offset: number): number {
    const sealedLength = plaintext.length + CRYPTO_OVERHEAD;
    if (offset + sealedLength > out.length) throw new CairnError('INTERNAL', 'encryptInto: output buffer too small');
    const iv = out.subarray(offset, offset + IV_SIZE);
    randomFillNonzero(iv);
    this.#ctr(iv, plaintext, out, offset + IV_SIZE);
    const macAt = offset + IV_SIZE + plaintext.length;
    poly1305Into(this.#oneTimeKey(iv), out.subarray(offset + IV_SIZE, macAt), out, macAt);
    return sealedLength;
  }

  /**
   * Seals `data` in place: `data` becomes the ciphertext, `iv` and `mac` (16 bytes each) receive
   * the IV and the tag, so IV || data || MAC is the sealed message. For writing blobs straight to
   * a pack file without an output buffer the size of the blob.
   */
  sealInPlace(data: Buffer, iv: Buffer, mac: Buffer): void {
    if (iv.length !== IV_SIZE || mac.length !== MAC_SIZE) throw new CairnError('INTERNAL', 'sealInPlace: IV and MAC must be 16 bytes');
    randomFillNonzero(iv);
    this.#ctr(iv, data, data, 0);
    poly1305Into(this.#oneTimeKey(iv), data, mac, 0);
  }

  /**
   * Opens IV || CIPHERTEXT || MAC in place, as `decrypt` does (MAC first), but writes the plaintext
   * over the ciphertext and returns a view of it: no buffer the size of the message is allocated.
   */
  openInPlace(sealed: Buffer): Buffer {
    this.#verify(sealed);
    const ciphertext = sealed.subarray(IV_SIZE, sealed.length - MAC_SIZE);
    this.#ctr(sealed.subarray(0, IV_SIZE), ciphertext, ciphertext, 0);
    return ciphertext;
  }

  /**
   * Opens IV || CIPHERTEXT || MAC. The MAC is checked (in constant time) before anything is
   * decrypted; `INTEGRITY` when it does not match or the input is too short to be sealed data.
   */
  decrypt(sealed: Uint8Array): Buffer {
    const ciphertext = this.#verify(sealed);
    const plain = Buffer.allocUnsafe(ciphertext.length);
    this.#ctr(sealed.subarray(0, IV_SIZE), ciphertext, plain, 0);
    return plain;
  }

  /** Checks the MAC of IV || CIPHERTEXT || MAC (in constant time); returns the ciphertext. */
  #verify(sealed: Uint8Array): Uint8Array {
    if (sealed.length < CRYPTO_OVERHEAD) {
      throw new CairnError('INTEGRITY', 'ciphertext verification failed');
    }
    const iv = sealed.subarray(0, IV_SIZE);
    // restic refuses an all-zero nonce; no data it wrote can have one.
    if (isAllZero(iv)) throw new CairnError('INTEGRITY', 'ciphertext verification failed: IV is all zero');
    const macAt = sealed.length - MAC_SIZE;
    const ciphertext = sealed.subarray(IV_SIZE, macAt);
    poly1305Into(this.#oneTimeKey(iv), ciphertext, this.#tag, 0);
    if (!timingSafeEqual(this.#tag, sealed.subarray(macAt))) {
      throw new CairnError('INTEGRITY', 'ciphertext verification failed');
    }
    return ciphertext;
  }

  /**
   * AES-256-CTR of `src` into `dst` at `dstOffset`. Node's update() returns a fresh buffer;
   * feeding it slices (CTR_SLICE) keeps those temporaries small and reused instead of faulting in
   * a second message-sized buffer.
   */
  #ctr(iv: Uint8Array, src: Uint8Array, dst: Buffer, dstOffset: number): void {
    const ctr = createCipheriv('aes-256-ctr', this.#encrypt, iv);
    for (let off = 0; off < src.length; off += CTR_SLICE) {
      ctr.update(src.subarray(off, off + CTR_SLICE)).copy(dst, dstOffset + off);
    }
    ctr.final();
    madeGarbage(src.length);
  }

  /** Poly1305-AES: r from the key, s = AES-128_k(nonce). */
  #oneTimeKey(iv: Uint8Array): Buffer {
    this.#nonceCipher.update(iv).copy(this.#polyKey, 16);
    return this.#polyKey;
  }
}

function checkKeyBytes(what: string, b: Uint8Array, size: number): void {
  if (!(b instanceof Uint8Array) || b.length !== size) {
    throw new CairnError('BAD_INPUT', `${what} must be ${size} bytes, got ${b instanceof Uint8Array ? b.length : typeof b}`);
  }
  // An all-zero key means the key was never filled in; restic rejects it too.
  if (isAllZero(b)) throw new CairnError('BAD_INPUT', `${what} is all zero`);
}

function isAllZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i];
  return acc === 0;
}

/** restic panics on an all-zero nonce and refuses it on decryption, so never produce one. */
/** IVs come out of a pool filled 64 KiB at a time: one getrandom call per 4096 IVs instead of one each. */
const ivPool = Buffer.allocUnsafe(64 * 1024);
let ivPoolAt = ivPool.length;

function randomFillNonzero(iv: Buffer): void {
  do {
    if (ivPoolAt + IV_SIZE > ivPool.length) {
      randomFillSync(ivPool);
      ivPoolAt = 0;
    }
    ivPool.copy(iv, 0, ivPoolAt, ivPoolAt + IV_SIZE);
    // Each IV is used once: wipe it from the pool.
    ivPool.fill(0, ivPoolAt, ivPoolAt + IV_SIZE);
    ivPoolAt += IV_SIZE;
  } while (isAllZero(iv));
}

/** Poly1305's clamping of r (RFC 8439 section 2.5). */
function clampR(r: Buffer): Buffer {
  r[3] &= 15;
  r[7] &= 15;
  r[11] &= 15;
  r[15] &= 15;
  r[4] &= 252;
  r[8] &= 252;
  r[12] &= 252;
  return r;
}
