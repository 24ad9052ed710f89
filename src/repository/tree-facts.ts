/**
 * What check's walk needs of a tree, taken by the blob worker that opens the tree while it reads
 * the tree's pack (check --read-data), so that the main thread does not load, decrypt, decompress
 * and hash every tree a second time: per tree its subfolders (name and subtree id) and the data
 * blobs its files reference. Bytes, not objects, so that a pack's trees cross from the worker with
 * no garbage: per tree its id's 32 bytes, a flag byte, the number of subfolders and of data blobs
 * (uint32 LE each), then each subfolder (subtree id, name length as uint32 LE, name in UTF-8), then
 * the data blobs' ids, 32 bytes each.
 *
 * A tree that the walk must look at itself (its JSON does not parse, a folder without a subtree,
 * an id that is not 64 hex digits, anything odd) gets the flag byte 1 and nothing else: the walk
 * loads it as it loads a tree whose pack was not read, and names what is wrong.
 */
import { decodeTree } from './tree.js';
import { ID_PATTERN, type Id } from './id.js';

const HEAD = 32 + 1 + 4 + 4;
const LOOK_YOURSELF = 1;

/** `buf`, or a copy of its first `used` bytes in one twice as large (or as large as needed), with room for `more`. */
function withRoom(buf: Buffer<ArrayBuffer>, used: number, more: number): Buffer<ArrayBuffer> {
  if (used + more <= buf.length) return buf;
  const grown = Buffer.allocUnsafe(Math.max(used + more, buf.length * 2));
  buf.copy(grown, 0, 0, used);
  return grown;
}

/** The facts of a pack's trees, tree after tree, in one growing buffer. */
export class TreeFactsWriter {
  #buf = Buffer.allocUnsafe(64 * 1024);
  #at = 0;

  /** Adds the facts of tree `id`, whose plaintext `plain` has been checked against `id`. */
  add(id: Id, plain: Buffer): void {
    const start = this.#at;
    this.#room(HEAD);
    this.#buf.write(id, start, 32, 'hex');
    this.#at = start + HEAD;
    let dirs = 0;
    let blobs = 0;
    try {
      const { nodes } = decodeTree(plain, id);
      // Subfolders first, then data blobs: two passes, so the reader finds each kind together.
      for (const n of nodes) {
        if (n.type !== 'dir') continue;
        if (typeof n.subtree !== 'string' || !ID_PATTERN.test(n.subtree)) throw new Error('a folder without a subtree');
        const name = Buffer.byteLength(n.name, 'utf8');
        this.#room(32 + 4 + name);
        this.#buf.write(n.subtree, this.#at, 32, 'hex');
        this.#buf.writeUInt32LE(name, this.#at + 32);
        this.#buf.write(n.name, this.#at + 36, name, 'utf8');
        this.#at += 36 + name;
        dirs++;
      }
      for (const n of nodes) {
        if (n.type !== 'file' || n.content == null) continue;
        if (!Array.isArray(n.content)) throw new Error('a file whose content is not a list');
        for (const b of n.content as unknown[]) {
          if (typeof b !== 'string' || !ID_PATTERN.test(b)) throw new Error('a data blob id that is not one');
          this.#room(32);
          this.#buf.write(b, this.#at, 32, 'hex');
          this.#at += 32;
          blobs++;
        }
      }
      this.#buf[start + 32] = 0;
    } catch {
      this.#at = start + HEAD;
      this.#buf[start + 32] = LOOK_YOURSELF;
      dirs = blobs = 0;
    }
    this.#buf.writeUInt32LE(dirs, start + 33);
    this.#buf.writeUInt32LE(blobs, start + 37);
  }

  /** The facts so far, in a buffer of their own (a structured clone copies a whole ArrayBuffer); empty when none. */
  finish(): Uint8Array {
    return this.#at === 0 ? new Uint8Array(0) : new Uint8Array(this.#buf.subarray(0, this.#at));
  }

  #room(n: number): void {
    this.#buf = withRoom(this.#buf, this.#at, n);
  }
}

/** One tree's facts as the walk reads them, in views valid during the callback only. */
export interface TreeFacts {
  /** Its subfolders' records (subtree id, name length, name), `folderCount` of them. */
  folders: Uint8Array;
  folderCount: number;
  /** The data blobs its files reference, 32 bytes each. */
  blobs: Uint8Array;
}

/**
 * Calls `each` with every tree in `bytes` (from TreeFactsWriter): its id's 32 bytes and its facts,
 * or null when the walk must look at it itself.
 */
export function readTreeFacts(bytes: Uint8Array, each: (id: Uint8Array, facts: TreeFacts | null) => void): void {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  for (let at = 0; at < b.length; ) {
    const id = b.subarray(at, at + 32);
    const flag = b[at + 32];
    const folderCount = b.readUInt32LE(at + 33);
    const blobs = b.readUInt32LE(at + 37);
    at += HEAD;
    const from = at;
    for (let i = 0; i < folderCount; i++) at += 36 + b.readUInt32LE(at + 32);
    const folders = b.subarray(from, at);
    const blobIds = b.subarray(at, at + blobs * 32);
    at += blobs * 32;
    each(id, flag === LOOK_YOURSELF ? null : { folders, folderCount, blobs: blobIds });
  }
}

/** A tree's subfolders: names, each beside its subtree's id. */
export interface Folders {
  names: string[];
  subtrees: Id[];
}

/** The subfolders that `folders` (`count` records, see TreeFacts) hold. */
export function decodeFolders(folders: Uint8Array, count: number): Folders {
  const b = Buffer.from(folders.buffer, folders.byteOffset, folders.length);
  const names: string[] = [];
  const subtrees: Id[] = [];
  for (let i = 0, at = 0; i < count; i++) {
    subtrees.push(b.toString('hex', at, at + 32));
    const name = b.readUInt32LE(at + 32);
    names.push(b.toString('utf8', at + 36, at + 36 + name));
    at += 36 + name;
  }
  return { names, subtrees };
}

const NONE = -1;
const NO_FOLDERS = -2;

/**
 * The subfolders of many trees, kept as bytes until the walk takes them, and found by the tree's
 * slot in the index (MasterIndex.slot, stable while nothing is added): ~40 bytes and the name per
 * subfolder and 4 per slot, where a map of strings and arrays took ~150 bytes a tree and ~120 a
 * subfolder, which for a repository of a million trees is the difference of ~200 MB.
 */
export class FolderStore {
  readonly #at: Int32Array;
  #buf = Buffer.allocUnsafe(64 * 1024);
  #end = 0;

  constructor(slots: number) {
    this.#at = new Int32Array(slots).fill(NONE);
  }

  /** Keeps the subfolders of the tree in `slot` (the first copy of a tree stays). */
  add(slot: number, facts: TreeFacts): void {
    if (this.#at[slot] !== NONE) return;
    if (facts.folderCount === 0) {
      this.#at[slot] = NO_FOLDERS;
      return;
    }
    const need = 4 + facts.folders.length;
    this.#buf = withRoom(this.#buf, this.#end, need);
    this.#at[slot] = this.#end;
    this.#buf.writeUInt32LE(facts.folderCount, this.#end);
    this.#buf.set(facts.folders, this.#end + 4);
    this.#end += need;
  }

  /** The subfolders of the tree in `slot`, or null when none were kept; each is given once. */
  take(slot: number): Folders | null {
    const at = this.#at[slot];
    if (at === NONE) return null;
    this.#at[slot] = NONE;
    if (at === NO_FOLDERS) return { names: [], subtrees: [] };
    const count = this.#buf.readUInt32LE(at);
    let end = at + 4;
    for (let i = 0; i < count; i++) end += 36 + this.#buf.readUInt32LE(end + 32);
    return decodeFolders(this.#buf.subarray(at + 4, end), count);
  }
}
