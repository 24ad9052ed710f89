import { CRYPTO_OVERHEAD } from '../crypto/crypto.js';
import { CairnError } from '../errors.js';
import { ROW_LENGTH, ROW_OFFSET, ROW_PACK, ROW_TREE, ROW_ULEN, ROW_WORDS, rowsFromIndexJSON, scanIndex, type ScannedIndex } from './index-scan.js';
import { parseJSON } from './unpacked.js';
import type { Id } from './id.js';
import { HeaderBlobs, forEachHeaderEntry, type BlobList, type BlobType } from './pack.js';

/** Where a blob lives. */
export interface BlobLocation {
  readonly packId: Id;
  readonly type: BlobType;
  readonly offset: number;
  readonly length: number;
  readonly uncompressedLength?: number;
}

/** The length of a blob's plaintext: its uncompressed length, or its stored length less the IV and MAC. */
export function plaintextLength(loc: BlobLocation): number {
  return loc.uncompressedLength ?? loc.length - CRYPTO_OVERHEAD;
}

/** An index file's JSON, as restic writes it. */
export interface IndexJSON {
  supersedes?: Id[];
  packs: {
    id: Id;
    blobs: { id: Id; type: BlobType; offset: number; length: number; uncompressed_length?: number }[];
  }[];
}

/** A MasterIndex's table, its blob count and its pack ids (pack number n is packIds[n]). */
export interface IndexTable {
  count: number;
  packIds: Id[];
  table: Uint32Array;
}

/** restic keeps index files under 8 MiB; this many blobs keep the JSON well below that. */
export const MAX_BLOBS_PER_INDEX = 50_000;

/**
 * The blob table's layout: one slot of 12 32-bit words per blob: the id's 32 bytes, then the
 * pack's number plus one with the tree bit on top (0 marks an empty slot, and is written last),
 * the offset, the length, and the uncompressed length plus one (0: not compressed).
 */
const SLOT_WORDS = 12;
const ID_WORDS = 8;
const PACK = 8;
const OFFSET = 9;
const LENGTH = 10;
const ULEN = 11;
const TREE_BIT = 0x8000_0000;
/** Linear probing stays short below this load; the table doubles past it (48 bytes a slot, 60-120 a blob). */
const MAX_LOAD = 0.8;
const INITIAL_SLOTS = 1024;

function emptyTable(): Uint32Array {
  return new Uint32Array(new SharedArrayBuffer(INITIAL_SLOTS * SLOT_WORDS * 4));
}

/** The binary form of a hex id, in a scratch buffer; false when `id` is not 64 hex digits. */
const idBytes = Buffer.alloc(32);
const idWords = new Uint32Array(idBytes.buffer, idBytes.byteOffset, ID_WORDS);
function parseId(id: string): boolean {
  return id.length === 64 && idBytes.write(id, 'hex') === 32;
}

function isU32(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
}

/** The slot index holding (tree?, the id in idWords), or the empty slot where it would go (negative - 1). */
function probe(table: Uint32Array, tree: boolean, atomic: boolean): number {
  const mask = table.length / SLOT_WORDS - 1;
  for (let i = idWords[0] & mask; ; i = (i + 1) & mask) {
    const base = i * SLOT_WORDS;
    // Workers read while the main thread adds: the pack word is stored last, so a slot that has
    // one has its whole id.
    const packWord = atomic ? Atomics.load(table, base + PACK) : table[base + PACK];
    if (packWord === 0) return -i - 1;
    if (((packWord & TREE_BIT) !== 0) !== tree) continue;
    let k = 0;
    while (k < ID_WORDS && table[base + k] === idWords[k]) k++;
    if (k === ID_WORDS) return i;
  }
}

/**
 * A read-only view of the index's blob table from another thread (the blob workers): whether a
 * blob is stored. The main thread only adds to the table it shares; when it outgrows it, it
 * shares a new one (see MasterIndex.table), and a view of the old one may miss the newest blobs,
 * which costs a duplicate blob at worst, never a missing one.
 */
export class SharedBlobView {
  readonly #table: Uint32Array;

  constructor(table: SharedArrayBuffer) {
    this.#table = new Uint32Array(table);
  }

  has(type: BlobType, id: Id): boolean {
    return parseId(id) && probe(this.#table, type === 'tree', true) >= 0;
  }
}

/**
 * Every blob the repository's index files describe, in a compact table (about 60-120 bytes a
 * blob, a third of what a Map of objects costs) in shared memory that the blob workers read
 * without copies. A blob may sit in several packs (concurrent backups, interrupted prunes);
 * lookups return the first location that was added.
 */
export class MasterIndex {
  #table = emptyTable();
  #count = 0;
  readonly #packIds: Id[] = [];
  readonly #packNumbers = new Map<Id, number>();

  static key(type: BlobType, id: Id): string {
    return type === 'tree' ? `t${id}` : id;
  }

  get size(): number {
    return this.#count;
  }

  /** The shared blob table, for a SharedBlobView; a new one after the table grows or is cleared. */
  get table(): SharedArrayBuffer {
    return this.#table.buffer as SharedArrayBuffer;
  }

  /** Forgets everything, before the index files are read again. */
  clear(): void {
    this.#table = emptyTable();
    this.#count = 0;
    this.#packIds.length = 0;
    this.#packNumbers.clear();
  }

  has(type: BlobType, id: Id): boolean {
    return parseId(id) && probe(this.#table, type === 'tree', false) >= 0;
  }

  lookup(type: BlobType, id: Id): BlobLocation | undefined {
    if (!parseId(id)) return undefined;
    const i = probe(this.#table, type === 'tree', false);
    return i < 0 ? undefined : this.#location(i * SLOT_WORDS);
  }

  hasPack(packId: Id): boolean {
    return this.#packNumbers.has(packId);
  }

  packIds(): IterableIterator<Id> {
    return this.#packNumbers.keys();
  }

  /** The slots in the table: every slot number is below this. */
  get slots(): number {
    return this.#table.length / SLOT_WORDS;
  }

  /**
   * The slot that holds a blob (id in hex or as its 32 bytes), or -1: a small handle for work that
   * marks or visits every blob (prune) without a string or object per blob. Slots move when the
   * table grows, so a slot is good only while nothing is added.
   */
  slot(type: BlobType, id: Id | Uint8Array): number {
    if (typeof id === 'string') {
      if (!parseId(id)) return -1;
    } else {
      if (id.length !== 32) return -1;
      idBytes.set(id);
    }
    return Math.max(-1, probe(this.#table, type === 'tree', false));
  }

  slotId(slot: number): Id {
    return Buffer.from(this.#table.buffer, slot * SLOT_WORDS * 4, 32).toString('hex');
  }

  slotType(slot: number): BlobType {
    return this.#table[slot * SLOT_WORDS + PACK] & TREE_BIT ? 'tree' : 'data';
  }

  /** Whether the blob in `slot` is looked up at this pack and offset: its first location, the copy that counts. */
  locatedAt(slot: number, packId: Id, offset: number): boolean {
    const base = slot * SLOT_WORDS;
    const n = this.#packNumbers.get(packId);
    return n !== undefined && (this.#table[base + PACK] & ~TREE_BIT) === n + 1 && this.#table[base + OFFSET] === offset;
  }

  addPack(packId: Id, blobs: BlobList): void {
    if (blobs.length === 0) return;
    const n = this.#packNumber(packId);
    if (!(blobs instanceof HeaderBlobs)) {
      for (const b of blobs) this.#add(packId, n, b.id, b.type, b.offset, b.length, b.uncompressedLength);
      return;
    }
    // Straight from the header's bytes: no object or hex id per blob for every pack a backup saves.
    const h = blobs.header;
    forEachHeaderEntry(h, packId, (tree, offset, length, ulen, idAt) => {
      if (ulen === 0xffff_ffff || offset > 0xffff_ffff) throw new CairnError('INTEGRITY', `pack ${packId} lists blob ${h.toString('hex', idAt, idAt + 32)} with an invalid offset or length`);
      // Grown first: growing rehashes through the id scratch.
      if (this.#count + 1 > MAX_LOAD * (this.#table.length / SLOT_WORDS)) this.#grow();
      h.copy(idBytes, 0, idAt, idAt + 32);
      this.#insert(n, tree ? 'tree' : 'data', offset, length, ulen);
    });
  }

  addIndexJSON(json: IndexJSON, indexId: Id): void {
    if (!json || !Array.isArray(json.packs)) throw new CairnError('INTEGRITY', `index ${indexId} has no packs list`);
    for (const p of json.packs) {
      const blobs = p.blobs ?? [];
      if (blobs.length === 0) continue;
      const n = this.#packNumber(p.id);
      // Straight from the parsed JSON: no second object per blob.
      for (const b of blobs) this.#add(p.id, n, b.id, b.type, b.offset, b.length, b.uncompressed_length);
    }
  }

  /**
   * Adds an index file from its JSON bytes: read straight into the table when it is in the shape
   * restic and Cairn write (see index-scan.ts), parsed as JSON otherwise. Returns what the file
   * lists, as rows.
   */
  addIndexText(json: Buffer, indexId: Id): ScannedIndex {
    const scanned = scanIndex(json);
    if (!scanned) {
      const parsed = parseJSON<IndexJSON>(json.toString('utf8'), `index ${indexId}`);
      this.addIndexJSON(parsed, indexId);
      return rowsFromIndexJSON(parsed);
    }
    // As addIndexJSON: a pack gets its number with its first blob (packs without blobs get none).
    const numbers = new Array<number>(scanned.packs.length).fill(-1);
    const { rows } = scanned;
    // Room for every blob at once: one rehash rather than one per doubling.
    let slots = this.slots;
    while (this.#count + scanned.count > MAX_LOAD * slots) slots *= 2;
    if (slots > this.slots) this.#grow(slots);
    for (let r = 0; r < scanned.count * ROW_WORDS; r += ROW_WORDS) {
      const p = rows[r + ROW_PACK];
      if (numbers[p] < 0) numbers[p] = this.#packNumber(scanned.packs[p]);
      for (let k = 0; k < ID_WORDS; k++) idWords[k] = rows[r + k];
      const ulen = rows[r + ROW_ULEN];
      this.#insert(numbers[p], rows[r + ROW_TREE] === 1 ? 'tree' : 'data', rows[r + ROW_OFFSET], rows[r + ROW_LENGTH], ulen === 0 ? undefined : ulen - 1);
    }
    return scanned;
  }

  #packNumber(packId: Id): number {
    let n = this.#packNumbers.get(packId);
    if (n === undefined) {
      n = this.#packIds.length;
      this.#packIds.push(packId);
      this.#packNumbers.set(packId, n);
    }
    return n;
  }

  #add(packId: Id, n: number, id: Id, type: BlobType, offset: number, length: number, uncompressedLength: number | undefined): void {
    // Grown first: growing rehashes through the id scratch that parseId fills.
    if (this.#count + 1 > MAX_LOAD * (this.#table.length / SLOT_WORDS)) this.#grow();
    if (!parseId(id)) throw new CairnError('INTEGRITY', `pack ${packId} lists a blob with the invalid id ${JSON.stringify(String(id).slice(0, 80))}`);
    if (!isU32(offset) || !isU32(length) || (uncompressedLength !== undefined && !isU32(uncompressedLength + 1))) {
      throw new CairnError('INTEGRITY', `pack ${packId} lists blob ${id} with an invalid offset or length`);
    }
    this.#insert(n, type, offset, length, uncompressedLength);
  }

  /** Adds the blob whose id is in idWords, unless the table has it; the table must have room. */
  #insert(n: number, type: BlobType, offset: number, length: number, uncompressedLength: number | undefined): void {
    const i = probe(this.#table, type === 'tree', false);
    if (i >= 0) return;
    this.#write(-i - 1, n, type, offset, length, uncompressedLength);
    this.#count++;
  }

  /** The table as it stands, copied: what the local cache keeps (see cache.ts). */
  exportTable(): IndexTable {
    return { count: this.#count, packIds: [...this.#packIds], table: this.#table.slice() };
  }

  /**
   * Starts an empty index from a cached table. The table is checked for shape (a power-of-two
   * number of slots, the count of filled slots, pack numbers in range): the cache's MAC says it
   * is ours, this says it is whole. A table that fills a SharedArrayBuffer of its own is taken
   * over as it is (the caller gives it up), any other is copied.
   */
  importTable(t: IndexTable): void {
    if (this.#count > 0) throw new CairnError('INTERNAL', 'importTable into an index that is not empty');
    const slots = t.table.length / SLOT_WORDS;
    if (!Number.isInteger(slots) || slots < INITIAL_SLOTS || (slots & (slots - 1)) !== 0 || t.count > MAX_LOAD * slots) {
      throw new CairnError('INTEGRITY', 'cached index table has an invalid size');
    }
    let filled = 0;
    for (let base = PACK; base < t.table.length; base += SLOT_WORDS) {
      const packWord = t.table[base];
      if (packWord === 0) continue;
      const n = (packWord & ~TREE_BIT) >>> 0;
      if (n === 0 || n > t.packIds.length) throw new CairnError('INTEGRITY', 'cached index table names a pack it does not list');
      filled++;
    }
    if (filled !== t.count) throw new CairnError('INTEGRITY', 'cached index table does not hold the blobs it counts');
    if (new Set(t.packIds).size !== t.packIds.length) throw new CairnError('INTEGRITY', 'cached index table lists a pack twice');
    const owned = t.table.buffer instanceof SharedArrayBuffer && t.table.byteOffset === 0 && t.table.byteLength === t.table.buffer.byteLength;
    if (owned) {
      this.#table = t.table;
    } else {
      this.#table = new Uint32Array(new SharedArrayBuffer(t.table.byteLength));
      this.#table.set(t.table);
    }
    this.#count = t.count;
    for (const id of t.packIds) this.#packNumber(id);
  }

  /** Every blob with its location, in no order (tests read the index through it; lookups go through `lookup`). */
  *entries(): IterableIterator<[string, BlobLocation]> {
    const t = this.#table;
    const id = Buffer.alloc(32);
    const words = new Uint32Array(id.buffer, id.byteOffset, ID_WORDS);
    for (let base = 0; base < t.length; base += SLOT_WORDS) {
      if (t[base + PACK] === 0) continue;
      for (let k = 0; k < ID_WORDS; k++) words[k] = t[base + k];
      const loc = this.#location(base);
      yield [MasterIndex.key(loc.type, id.toString('hex')), loc];
    }
  }

  #location(base: number): BlobLocation {
    const t = this.#table;
    const packWord = t[base + PACK];
    const ulen = t[base + ULEN];
    return {
      packId: this.#packIds[(packWord & ~TREE_BIT) - 1],
      type: packWord & TREE_BIT ? 'tree' : 'data',
      offset: t[base + OFFSET],
      length: t[base + LENGTH],
      uncompressedLength: ulen === 0 ? undefined : ulen - 1,
    };
  }

  /** Writes the id in idWords into the empty slot `i`, the pack word last (see probe). */
  #write(i: number, pack: number, type: BlobType, offset: number, length: number, uncompressedLength: number | undefined): void {
    const t = this.#table;
    const base = i * SLOT_WORDS;
    t.set(idWords, base);
    t[base + OFFSET] = offset;
    t[base + LENGTH] = length;
    t[base + ULEN] = uncompressedLength === undefined ? 0 : uncompressedLength + 1;
    Atomics.store(t, base + PACK, ((pack + 1) | (type === 'tree' ? TREE_BIT : 0)) >>> 0);
  }

  /** Moves the table into new shared memory twice the size (or `slots`); views of the old one keep reading it unchanged. */
  #grow(slots = 2 * this.slots): void {
    const old = this.#table;
    this.#table = new Uint32Array(new SharedArrayBuffer(slots * SLOT_WORDS * 4));
    for (let base = 0; base < old.length; base += SLOT_WORDS) {
      const packWord = old[base + PACK];
      if (packWord === 0) continue;
      idWords.set(old.subarray(base, base + ID_WORDS));
      const i = -probe(this.#table, (packWord & TREE_BIT) !== 0, false) - 1;
      this.#table.set(old.subarray(base, base + SLOT_WORDS), i * SLOT_WORDS);
    }
  }
}

/** What one index file lists: packs with their blobs, and the index files it replaces. */
export interface IndexFileContent {
  supersedes?: Id[];
  packs: readonly { id: Id; blobs: BlobList }[];
}

/** Index files for the given packs, split so that none grows past MAX_BLOBS_PER_INDEX blobs. */
export function splitIndexFiles(packs: readonly { id: Id; blobs: BlobList }[], supersedes: Id[] = []): IndexFileContent[] {
  const files: IndexFileContent[] = [];
  let current: { id: Id; blobs: BlobList }[] = [];
  let count = 0;
  for (const p of packs) {
    if (count > 0 && count + p.blobs.length > MAX_BLOBS_PER_INDEX) {
      files.push({ packs: current });
      current = [];
      count = 0;
    }
    current.push(p);
    count += p.blobs.length;
  }
  if (current.length > 0 || (files.length === 0 && supersedes.length > 0)) files.push({ packs: current });
  if (supersedes.length > 0) files[0] = { supersedes, packs: files[0].packs };
  return files;
}

/** Index JSON is written in pieces of this size (zstd's streaming input size). */
const INDEX_PIECE = 128 * 1024;
/** Room one blob's entry (or one id of `supersedes`) can take, at most. */
const ENTRY_ROOM = 256;
const HEX = Buffer.from('0123456789abcdef', 'latin1');
const HEX_ID = /^[0-9a-f]{64}$/;

/**
 * Writes an index file's JSON in restic's shape, exactly as JSON.stringify would write it, in
 * pieces of one reused buffer that `sink` must consume before it returns. Bytes straight from the
 * blob lists (a pack's header bytes, for HeaderBlobs): no string or object per blob, where text
 * made a blob at a time left ~1 KiB of garbage per blob, written twice (to measure, then to
 * compress). Everything in it is ASCII: ids are hex, the rest fixed words and numbers.
 */
export function writeIndexJSON(f: IndexFileContent, sink: (piece: Buffer) => void): void {
  const out = Buffer.allocUnsafe(INDEX_PIECE);
  let at = 0;
  const room = (): void => {
    if (at <= INDEX_PIECE - ENTRY_ROOM) return;
    sink(out.subarray(0, at));
    at = 0;
  };
  // A loop, not Buffer#write: these are a few bytes each, a million times for a large index.
  const text = (t: string): void => {
    for (let i = 0; i < t.length; i++) out[at++] = t.charCodeAt(i);
  };
  // Ids are written as they are, unquoted: only ever lowercase hex (the index checks those it reads).
  const id = (t: string): void => {
    if (!HEX_ID.test(t)) throw new CairnError('INTERNAL', `index entry with an invalid id ${JSON.stringify(t.slice(0, 80))}`);
    text(t);
  };
  const uint = (n: number): void => {
    at += digits(n);
    for (let m = n, p = at - 1; ; m = Math.floor(m / 10)) {
      out[p--] = 48 + (m % 10);
      if (m < 10) break;
    }
  };
  // A blob's entry: its head (room() first, then the id written in place) and its tail.
  const blobHead = (first: boolean): void => {
    room();
    text(first ? '{"id":"' : ',{"id":"');
  };
  const blobTail = (type: BlobType, offset: number, length: number, ulen: number | undefined): void => {
    text(type === 'tree' ? '","type":"tree","offset":' : '","type":"data","offset":');
    uint(offset);
    text(',"length":');
    uint(length);
    if (ulen !== undefined) {
      text(',"uncompressed_length":');
      uint(ulen);
    }
    text('}');
  };
  if (f.supersedes) {
    text('{"supersedes":[');
    f.supersedes.forEach((superseded, i) => {
      room();
      text(i === 0 ? '"' : ',"');
      id(superseded);
      text('"');
    });
    text('],"packs":[');
  } else text('{"packs":[');
  f.packs.forEach(({ id: packId, blobs }, p) => {
    room();
    text(p === 0 ? '{"id":"' : ',{"id":"');
    id(packId);
    text('","blobs":[');
    if (blobs instanceof HeaderBlobs) {
      const h = blobs.header;
      // Only the first entry is at offset 0: every blob is longer than its IV and MAC.
      forEachHeaderEntry(h, packId, (tree, offset, length, ulen, idAt) => {
        blobHead(offset === 0);
        for (let k = idAt; k < idAt + 32; k++) {
          out[at++] = HEX[h[k] >> 4];
          out[at++] = HEX[h[k] & 15];
        }
        blobTail(tree ? 'tree' : 'data', offset, length, ulen);
      });
    } else {
      blobs.forEach((b, i) => {
        blobHead(i === 0);
        id(b.id);
        blobTail(b.type, b.offset, b.length, b.uncompressedLength);
      });
    }
    text(']}');
  });
  text(']}');
  sink(out.subarray(0, at));
}

/** Decimal digits of a whole number. */
function digits(n: number): number {
  let d = 1;
  for (let m = n; m >= 10; m = Math.floor(m / 10)) d++;
  return d;
}

/**
 * The length of what writeIndexJSON writes for `f`, in bytes, counted without writing it (the
 * compressed frame records it first). The tests hold the two to each other.
 */
export function indexJSONLength(f: IndexFileContent): number {
  // {"id":"…","type":"data","offset":N,"length":N} and ,"uncompressed_length":N; a comma before all but the first.
  const entry = (first: boolean, idLength: number, offset: number, length: number, ulen: number | undefined): number =>
    (first ? 0 : 1) + '{"id":"'.length + idLength + '","type":"data","offset":'.length + digits(offset) + ',"length":'.length + digits(length) + (ulen === undefined ? 0 : ',"uncompressed_length":'.length + digits(ulen)) + 1;
  let n = f.supersedes ? '{"supersedes":['.length + f.supersedes.reduce((sum, id, i) => sum + (i === 0 ? 2 : 3) + id.length, 0) + '],"packs":['.length : '{"packs":['.length;
  f.packs.forEach(({ id, blobs }, p) => {
    n += (p === 0 ? 0 : 1) + '{"id":"'.length + id.length + '","blobs":['.length + ']}'.length;
    if (blobs instanceof HeaderBlobs) {
      forEachHeaderEntry(blobs.header, id, (_tree, offset, length, ulen) => (n += entry(offset === 0, 64, offset, length, ulen)));
    } else {
      blobs.forEach((b, i) => (n += entry(i === 0, b.id.length, b.offset, b.length, b.uncompressedLength)));
    }
  });
  return n + ']}'.length;
}
