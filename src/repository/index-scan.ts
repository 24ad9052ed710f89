import type { Id } from './id.js';
import type { IndexJSON } from './master-index.js';

/**
 * A fast reader for index files in the exact shape restic and Cairn write them (Go's
 * encoding/json: no spaces, fields in one order, `uncompressed_length` only when set, an optional
 * newline at the end):
 *
 *   {"supersedes":[…],"packs":[{"id":"…","blobs":[{"id":"…","type":"data","offset":0,"length":9,"uncompressed_length":7},…]},…]}
 *
 * It reads the bytes once, with no object or string per blob: ids go straight into 32-bit words.
 * Anything else (other spacing or field order, numbers that are not plain digits, an id that is
 * not 64 hex digits, damage) makes it give up, and the caller parses the file as JSON instead, so
 * that what is accepted and every error message stay those of the JSON path.
 */

/** Words per scanned blob: the id's 8, then the pack's number in `packs`, tree (1) or data (0), offset, length, uncompressed length plus one (0: not compressed). */
export const ROW_WORDS = 13;
export const ROW_PACK = 8;
export const ROW_TREE = 9;
export const ROW_OFFSET = 10;
export const ROW_LENGTH = 11;
export const ROW_ULEN = 12;

export interface ScannedIndex {
  packs: Id[];
  /** ROW_WORDS words per blob, `count` rows. */
  rows: Uint32Array;
  count: number;
}

/** Each byte's value as a hex digit (lower or upper case), or 255. */
const HEX = new Uint8Array(256).fill(255);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[97 + i] = 10 + i;
  HEX[65 + i] = 10 + i;
}

const enc = (s: string): Uint8Array => Buffer.from(s, 'latin1');
const SUPERSEDES = enc('{"supersedes":[');
const PACKS_AFTER_SUPERSEDES = enc(',"packs":[');
const PACKS = enc('{"packs":[');
const PACK_ID = enc('{"id":"');
const BLOBS = enc('","blobs":[');
const BLOB_ID = PACK_ID;
const TYPE = enc('","type":"');
const DATA = enc('data"');
const TREE = enc('tree"');
const OFFSET = enc(',"offset":');
const LENGTH = enc(',"length":');
const ULEN = enc(',"uncompressed_length":');

const QUOTE = 0x22;
const COMMA = 0x2c;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

class Scanner {
  readonly #b: Uint8Array;
  p = 0;

  constructor(b: Uint8Array) {
    this.#b = b;
  }

  /** Consumes `lit` when the bytes at the position are exactly it. */
  take(lit: Uint8Array): boolean {
    const b = this.#b;
    const p = this.p;
    if (p + lit.length > b.length) return false;
    for (let i = 0; i < lit.length; i++) if (b[p + i] !== lit[i]) return false;
    this.p = p + lit.length;
    return true;
  }

  takeByte(c: number): boolean {
    if (this.#b[this.p] !== c) return false;
    this.p++;
    return true;
  }

  /** 64 hex digits into `out` (32 bytes); false when they are not. */
  hexId(out: Uint8Array): boolean {
    const b = this.#b;
    const p = this.p;
    if (p + 64 > b.length) return false;
    for (let i = 0; i < 32; i++) {
      const hi = HEX[b[p + 2 * i]];
      const lo = HEX[b[p + 2 * i + 1]];
      if ((hi | lo) > 15) return false;
      out[i] = (hi << 4) | lo;
    }
    this.p = p + 64;
    return true;
  }

  /** The 64-digit id at the position as text (lower case, as every id is named); null when it is not one. */
  hexText(scratch: Uint8Array): string | null {
    const start = this.p;
    if (!this.hexId(scratch)) return null;
    const text = Buffer.from(this.#b.buffer, this.#b.byteOffset + start, 64).toString('latin1');
    return text === text.toLowerCase() ? text : null;
  }

  /** A plain unsigned integer below 2^32 (no sign, fraction, exponent or leading zero); -1 otherwise. */
  u32(): number {
    const b = this.#b;
    let p = this.p;
    const start = p;
    let v = 0;
    while (p < b.length && b[p] >= 48 && b[p] <= 57 && p - start < 11) v = v * 10 + (b[p++] - 48);
    const n = p - start;
    if (n === 0 || (n > 1 && b[start] === 48) || v > 0xffff_ffff) return -1;
    this.p = p;
    return v;
  }

  /** A list of quoted ids after its `[`, through its `]`. */
  idList(scratch: Uint8Array): boolean {
    if (this.takeByte(CLOSE_ARRAY)) return true;
    for (;;) {
      if (!this.takeByte(QUOTE) || !this.hexId(scratch) || !this.takeByte(QUOTE)) return false;
      if (this.takeByte(CLOSE_ARRAY)) return true;
      if (!this.takeByte(COMMA)) return false;
    }
  }

  /** Whether only whitespace is left. */
  atEnd(): boolean {
    const b = this.#b;
    for (let p = this.p; p < b.length; p++) if (b[p] !== 0x0a && b[p] !== 0x0d && b[p] !== 0x20 && b[p] !== 0x09) return false;
    return true;
  }
}

/** The packs and blobs of an index file's JSON bytes, or null when they are not in the usual shape. */
export function scanIndex(json: Uint8Array): ScannedIndex | null {
  const s = new Scanner(json);
  const id = new Uint8Array(32);
  const idWords = new Uint32Array(id.buffer);
  if (s.take(SUPERSEDES)) {
    if (!s.idList(id) || !s.take(PACKS_AFTER_SUPERSEDES)) return null;
  } else if (!s.take(PACKS)) return null;
  const packs: Id[] = [];
  // A blob takes ~150 bytes of JSON: room for all of them up front, grown if that was short.
  let rows = new Uint32Array(Math.max(16, Math.ceil(json.length / 140)) * ROW_WORDS);
  let count = 0;
  if (!s.takeByte(CLOSE_ARRAY)) {
    for (;;) {
      if (!s.take(PACK_ID)) return null;
      const packId = s.hexText(id);
      if (packId === null || !s.take(BLOBS)) return null;
      const pack = packs.length;
      packs.push(packId);
      if (!s.takeByte(CLOSE_ARRAY)) {
        for (;;) {
          if (!s.take(BLOB_ID) || !s.hexId(id) || !s.take(TYPE)) return null;
          const tree = s.take(TREE) ? 1 : s.take(DATA) ? 0 : -1;
          if (tree < 0 || !s.take(OFFSET)) return null;
          const offset = s.u32();
          if (offset < 0 || !s.take(LENGTH)) return null;
          const length = s.u32();
          if (length < 0) return null;
          let ulenPlusOne = 0;
          if (s.take(ULEN)) {
            const ulen = s.u32();
            if (ulen < 0 || ulen === 0xffff_ffff) return null;
            ulenPlusOne = ulen + 1;
          }
          if (!s.takeByte(CLOSE_OBJECT)) return null;
          if ((count + 1) * ROW_WORDS > rows.length) {
            const grown = new Uint32Array(rows.length * 2);
            grown.set(rows);
            rows = grown;
          }
          const r = count * ROW_WORDS;
          rows.set(idWords, r);
          rows[r + ROW_PACK] = pack;
          rows[r + ROW_TREE] = tree;
          rows[r + ROW_OFFSET] = offset;
          rows[r + ROW_LENGTH] = length;
          rows[r + ROW_ULEN] = ulenPlusOne;
          count++;
          if (s.takeByte(COMMA)) continue;
          if (s.takeByte(CLOSE_ARRAY)) break;
          return null;
        }
      }
      if (!s.takeByte(CLOSE_OBJECT)) return null;
      if (s.takeByte(COMMA)) continue;
      if (s.takeByte(CLOSE_ARRAY)) break;
      return null;
    }
  }
  if (!s.takeByte(CLOSE_OBJECT) || !s.atEnd()) return null;
  return { packs, rows, count };
}

/** Writes the id of the row at word `r` as its 32 bytes into `out` at `at`. */
export function writeRowId(rows: Uint32Array, r: number, out: Buffer, at: number): void {
  for (let k = 0; k < 8; k++) out.writeUInt32LE(rows[r + k], at + 4 * k);
}

/**
 * The rows `scanIndex` gives, from an index file parsed as JSON (one that `scanIndex` gave up
 * on), so that readers of index files see one form. The file must have passed
 * MasterIndex.addIndexJSON, which checks its ids, offsets and lengths.
 */
export function rowsFromIndexJSON(json: IndexJSON): ScannedIndex {
  const packs = json.packs.map((p) => p.id);
  const count = json.packs.reduce((n, p) => n + (p.blobs?.length ?? 0), 0);
  const rows = new Uint32Array(count * ROW_WORDS);
  const id = Buffer.alloc(32);
  const idWords = new Uint32Array(id.buffer, id.byteOffset, 8);
  let r = 0;
  json.packs.forEach((p, pack) => {
    for (const b of p.blobs ?? []) {
      id.write(b.id, 'hex');
      rows.set(idWords, r);
      rows[r + ROW_PACK] = pack;
      rows[r + ROW_TREE] = b.type === 'tree' ? 1 : 0;
      rows[r + ROW_OFFSET] = b.offset;
      rows[r + ROW_LENGTH] = b.length;
      rows[r + ROW_ULEN] = b.uncompressed_length === undefined ? 0 : b.uncompressed_length + 1;
      r += ROW_WORDS;
    }
  });
  return { packs, rows, count };
}
