import { CairnError } from '../errors.js';
import { compress, compressStream, decompress } from '../compress/zstd.js';

/**
 * restic's "unpacked" files (index, snapshots, locks, config) are one JSON document each. Format
 * v2 prefixes the plaintext with an encoding byte: 2 means zstd-compressed JSON follows; '{' or
 * '[' means the whole plaintext is plain JSON (v1, and what restic writes for `config`).
 */
const ENCODING_ZSTD = 2;

/** Plaintext for an unpacked file: compressed with the v2 encoding byte, or plain JSON for v1/config. */
export function encodeUnpacked(json: string, compressed: boolean): Buffer {
  const plain = Buffer.from(json, 'utf8');
  if (!compressed) return plain;
  const packed = compress(plain, 'auto', 'json');
  const out = Buffer.allocUnsafe(packed.length + 1);
  out[0] = ENCODING_ZSTD;
  packed.copy(out, 1);
  return out;
}

/**
 * Like encodeUnpacked, for JSON of `size` bytes that `write` hands to its sink piece by piece (see
 * compressStream): large index files are never one string.
 */
export function encodeUnpackedStream(write: (sink: (piece: Uint8Array) => void) => void, size: number, compressed: boolean): Buffer {
  if (compressed) return compressStream(size, write, Buffer.of(ENCODING_ZSTD));
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  write((piece) => {
    if (at + piece.length > size) throw new CairnError('INTERNAL', `unpacked file longer than its ${size} bytes`);
    out.set(piece, at);
    at += piece.length;
  });
  if (at !== size) throw new CairnError('INTERNAL', `unpacked file of ${at} bytes, not ${size}`);
  return out;
}

/** The JSON text of an unpacked file's plaintext, whichever encoding it has. */
export function decodeUnpacked(plain: Buffer, what: string): string {
  return decodeUnpackedBytes(plain, what).toString('utf8');
}

/** Like decodeUnpacked, as UTF-8 bytes. */
export function decodeUnpackedBytes(plain: Buffer, what: string): Buffer {
  if (plain.length === 0) throw new CairnError('INTEGRITY', `${what} is empty`);
  const first = plain[0];
  if (first === 0x7b || first === 0x5b) return plain;
  if (first === ENCODING_ZSTD) return decompress(plain.subarray(1));
  throw new CairnError('INTEGRITY', `${what} has unknown encoding version ${first}`);
}

export function parseJSON<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new CairnError('INTEGRITY', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}
