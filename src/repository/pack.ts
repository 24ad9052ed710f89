import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { CairnError } from '../errors.js';
import type { Key } from '../crypto/crypto.js';
import { CRYPTO_OVERHEAD, IV_SIZE, MAC_SIZE } from '../crypto/crypto.js';
import { hashId, type Id } from './id.js';

/**
 * Pack files: EncryptedBlob1 || … || EncryptedBlobN || EncryptedHeader || HeaderLength (uint32 LE).
 * Header entries: a type byte (0 data, 1 tree, 2 compressed data, 3 compressed tree), the
 * encrypted length (uint32 LE), for compressed types the plaintext length (uint32 LE), then the
 * 32-byte plaintext hash.
 */
export type BlobType = 'data' | 'tree';

/**
 * A pack's blobs as check compares them with the index: per blob its id's 32 bytes, a type byte
 * (1 for a tree) and its offset (uint32 LE), 37 bytes back to back. Bytes, not objects, so that a
 * pack's listing crosses from a worker and is compared with no garbage.
 */
export const LISTING_RECORD = 37;

/** `blobs` as listing records (see LISTING_RECORD), in their order; in a buffer of its own. */
export function encodeListing(blobs: readonly Pick<PackedBlob, 'id' | 'type' | 'offset'>[]): Buffer {
  const out = Buffer.from(new ArrayBuffer(blobs.length * LISTING_RECORD));
  blobs.forEach((b, i) => {
    const o = i * LISTING_RECORD;
    out.write(b.id, o, 32, 'hex');
    out[o + 32] = b.type === 'tree' ? 1 : 0;
    out.writeUInt32LE(b.offset, o + 33);
  });
  return out;
}

export interface PackedBlob {
  readonly id: Id;
  readonly type: BlobType;
  /** Offset of the encrypted blob in its pack. */
  readonly offset: number;
  /** Length of the encrypted blob (IV, ciphertext and MAC). */
  readonly length: number;
  /** Plaintext length, set only for compressed blobs. */
  readonly uncompressedLength?: number;
}

const ENTRY_PLAIN = 1 + 4 + 32;
const ENTRY_COMPRESSED = 1 + 4 + 4 + 32;
/** A pack header larger than this is damage, not data: restic's packs hold at most a few thousand blobs. */
export const MAX_HEADER = 16 * 1024 * 1024;

export function encodePackHeader(blobs: readonly PackedBlob[]): Buffer {
  let size = 0;
  for (const b of blobs) size += b.uncompressedLength === undefined ? ENTRY_PLAIN : ENTRY_COMPRESSED;
  const out = Buffer.allocUnsafe(size);
  let p = 0;
  for (const b of blobs) {
    const compressed = b.uncompressedLength !== undefined;
    out[p++] = (b.type === 'tree' ? 1 : 0) | (compressed ? 2 : 0);
    out.writeUInt32LE(b.length, p);
    p += 4;
    if (compressed) {
      out.writeUInt32LE(b.uncompressedLength!, p);
      p += 4;
    }
    p += out.write(b.id, p, 'hex');
  }
  return out;
}

/** Parses a decrypted pack header; offsets follow from the lengths. */
export function parsePackHeader(plain: Buffer, packId: Id): PackedBlob[] {
  const out: PackedBlob[] = [];
  forEachHeaderEntry(plain, packId, (tree, offset, length, uncompressedLength, idAt) => out.push({ id: plain.toString('hex', idAt, idAt + 32), type: tree ? 'tree' : 'data', offset, length, uncompressedLength }));
  return out;
}

/**
 * Calls `visit` for each entry of a pack header's plaintext with its fields as numbers and where
 * its id's 32 bytes start in `plain`: no object or hex id per blob (for the index's table and
 * index files, a backup's every pack). Throws on an unknown type, a truncated entry and a blob
 * too short to hold its IV and MAC.
 */
export function forEachHeaderEntry(plain: Buffer, packId: Id, visit: (tree: boolean, offset: number, length: number, uncompressedLength: number | undefined, idAt: number) => void): void {
  let offset = 0;
  for (let p = 0; p < plain.length; ) {
    const t = plain[p];
    if (t > 3) throw new CairnError('INTEGRITY', `pack ${packId}: invalid blob type ${t} in header`);
    const compressed = (t & 2) !== 0;
    const need = compressed ? ENTRY_COMPRESSED : ENTRY_PLAIN;
    if (p + need > plain.length) throw new CairnError('INTEGRITY', `pack ${packId}: truncated header entry`);
    const length = plain.readUInt32LE(p + 1);
    if (length < CRYPTO_OVERHEAD) throw new CairnError('INTEGRITY', `pack ${packId}: blob ${plain.toString('hex', p + need - 32, p + need)} too short`);
    visit((t & 1) === 1, offset, length, compressed ? plain.readUInt32LE(p + 5) : undefined, p + need - 32);
    offset += length;
    p += need;
  }
}

/**
 * A pack's blobs kept as its header's plaintext (37 or 41 bytes a blob) rather than as an object
 * and an id string per blob (some 150 bytes of heap each): what a backup holds for every saved
 * pack until an index file lists it, and what a worker hands over with a pack it filled.
 */
export class HeaderBlobs implements Iterable<PackedBlob> {
  readonly header: Buffer;
  readonly length: number;

  constructor(header: Buffer, length: number) {
    this.header = header;
    this.length = length;
  }

  static of(blobs: readonly PackedBlob[]): HeaderBlobs {
    return new HeaderBlobs(encodePackHeader(blobs), blobs.length);
  }

  [Symbol.iterator](): Iterator<PackedBlob> {
    return parsePackHeader(this.header, 'in memory')[Symbol.iterator]();
  }
}

/** A pack's blobs, as objects or compactly. */
export type BlobList = readonly PackedBlob[] | HeaderBlobs;

/** The encrypted header and its length field, as appended to a pack. */
export function sealPackHeader(key: Key, blobs: readonly PackedBlob[]): Buffer {
  return sealHeader(key, encodePackHeader(blobs));
}

function sealHeader(key: Key, header: Buffer): Buffer {
  const sealed = key.encrypt(header);
  const tail = Buffer.allocUnsafe(4);
  tail.writeUInt32LE(sealed.length, 0);
  return Buffer.concat([sealed, tail]);
}

/**
 * Reads and checks a pack's header from its tail. `tail` holds the last bytes of the pack (at
 * least the header and its length field when `tail.length === packSize`); when the header does not
 * fit, the length it needs is returned so the caller can load more.
 */
export function parsePackTail(
  key: Key,
  tail: Buffer,
  packSize: number,
  packId: Id,
): { blobs: PackedBlob[] } | { need: number } {
  if (packSize < 4 + CRYPTO_OVERHEAD) throw new CairnError('INTEGRITY', `pack ${packId}: file too short (${packSize} bytes)`);
  const headerLength = tail.readUInt32LE(tail.length - 4);
  if (headerLength < CRYPTO_OVERHEAD || headerLength > MAX_HEADER || headerLength + 4 > packSize) {
    throw new CairnError('INTEGRITY', `pack ${packId}: invalid header length ${headerLength}`);
  }
  if (headerLength + 4 > tail.length) return { need: headerLength + 4 };
  const sealed = tail.subarray(tail.length - 4 - headerLength, tail.length - 4);
  let plain: Buffer;
  try {
    plain = key.decrypt(sealed);
  } catch {
    throw new CairnError('INTEGRITY', `pack ${packId}: header fails verification`);
  }
  const blobs = parsePackHeader(plain, packId);
  const dataEnd = blobs.length === 0 ? 0 : blobs[blobs.length - 1].offset + blobs[blobs.length - 1].length;
  if (dataEnd + headerLength + 4 !== packSize) {
    throw new CairnError('INTEGRITY', `pack ${packId}: header describes ${dataEnd} bytes of blobs but the file has ${packSize - headerLength - 4}`);
  }
  return { blobs };
}

/** Collects sealed blobs into one pack; `finish` appends the header and names the pack by its hash. */
export class PackBuilder {
  readonly #key: Key;
  readonly #parts: Uint8Array[] = [];
  readonly #blobs: PackedBlob[] = [];
  #size = 0;

  constructor(key: Key) {
    this.#key = key;
  }

  get size(): number {
    return this.#size;
  }

  get count(): number {
    return this.#blobs.length;
  }

  add(type: BlobType, id: Id, sealed: Uint8Array, uncompressedLength?: number): void {
    this.#blobs.push({ id, type, offset: this.#size, length: sealed.length, uncompressedLength });
    this.#parts.push(sealed);
    this.#size += sealed.length;
  }

  finish(): { id: Id; bytes: Buffer; blobs: PackedBlob[] } {
    this.#parts.push(sealPackHeader(this.#key, this.#blobs));
    const bytes = Buffer.concat(this.#parts);
    const id = hashId(bytes);
    return { id, bytes, blobs: this.#blobs };
  }
}

/** Sealed blobs smaller than this are gathered in memory and written together. */
const GATHER_BELOW = 128 * 1024;
/** How much the gathering buffer holds before it goes to the file. */
const GATHER_SIZE = 1024 * 1024;

/**
 * Writes a pack straight to a file, as restic does: the pack is hashed as it grows and the header
 * goes at the end; nothing pack-sized is held in memory. A large blob is sealed in place in the
 * caller's buffer and appended with its IV and MAC; small ones are sealed into a gathering buffer
 * (`scratch`, reused across packs when the caller passes one) that is written and hashed 1 MiB at
 * a time, so a folder of small files costs a few writes rather than one per file. The file is
 * created new (`wx`) at `path`; on `abort` it is closed and removed.
 */
export class PackFileWriter {
  readonly path: string;
  readonly #key: Key;
  readonly #fd: number;
  readonly #hash = createHash('sha256');
  readonly #blobs: PackedBlob[] = [];
  readonly #iv = Buffer.alloc(IV_SIZE);
  readonly #mac = Buffer.alloc(MAC_SIZE);
  readonly #gather: Buffer;
  /** Bytes waiting in #gather. */
  #gathered = 0;
  #size = 0;
  #open = true;

  constructor(key: Key, path: string, scratch?: Buffer) {
    this.#key = key;
    this.path = path;
    this.#gather = scratch && scratch.length >= GATHER_SIZE ? scratch : Buffer.allocUnsafe(GATHER_SIZE);
    this.#fd = fs.openSync(path, 'wx', 0o600);
  }

  get size(): number {
    return this.#size;
  }

  get count(): number {
    return this.#blobs.length;
  }

  /**
   * Seals `plain` (already compressed when `uncompressedLength` is set) into the pack. `plain` may
   * be encrypted in place, so the caller must not need its bytes afterwards. Returns the sealed length.
   */
  add(type: BlobType, id: Id, plain: Buffer, uncompressedLength?: number): number {
    const length = plain.length + CRYPTO_OVERHEAD;
    if (length < GATHER_BELOW) {
      if (this.#gathered + length > this.#gather.length) this.#flush();
      this.#gathered += this.#key.encryptInto(plain, this.#gather, this.#gathered);
    } else {
      this.#flush();
      this.#key.sealInPlace(plain, this.#iv, this.#mac);
      this.#write([this.#iv, plain, this.#mac]);
    }
    this.#blobs.push({ id, type, offset: this.#size, length, uncompressedLength });
    this.#size += length;
    return length;
  }

  /**
   * Appends the header and closes the file; the pack is named by the hash of its bytes. `header`
   * is the header's plaintext (see HeaderBlobs).
   */
  finish(): { id: Id; length: number; blobs: PackedBlob[]; header: Buffer } {
    this.#flush();
    const header = encodePackHeader(this.#blobs);
    const tail = sealHeader(this.#key, header);
    this.#write([tail]);
    this.#open = false;
    fs.closeSync(this.#fd);
    return { id: this.#hash.digest('hex'), length: this.#size + tail.length, blobs: this.#blobs, header };
  }

  /** Closes and removes the unfinished file. */
  abort(): void {
    if (this.#open) {
      this.#open = false;
      fs.closeSync(this.#fd);
    }
    fs.rmSync(this.path, { force: true });
  }

  #flush(): void {
    if (this.#gathered === 0) return;
    const bytes = this.#gather.subarray(0, this.#gathered);
    this.#gathered = 0;
    this.#write([bytes]);
  }

  #write(parts: Buffer[]): void {
    let total = 0;
    for (const p of parts) {
      this.#hash.update(p);
      total += p.length;
    }
    let done = fs.writevSync(this.#fd, parts);
    // Short writes are rare (a full disk reports ENOSPC instead), but finish the rest piece by piece.
    while (done < total) {
      let skip = done;
      let i = 0;
      while (skip >= parts[i].length) skip -= parts[i++].length;
      done += fs.writeSync(this.#fd, parts[i], skip);
    }
  }
}
