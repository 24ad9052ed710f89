import { nodeMeta, type NodeMeta } from '../fs/apply.js';
import type { Node, NodeType } from '../fs/node.js';
import type { FsPath } from '../fs/fspath.js';
import { doubled } from '../util/typed.js';

const TYPES: readonly NodeType[] = ['file', 'dir', 'symlink', 'dev', 'chardev', 'fifo', 'socket'];
const TYPE_CODE = new Map(TYPES.map((t, i) => [t, i]));
/** The code of a type this version does not know (its node is kept, see `special`). */
const OTHER = 0xff;
const NO_MODE = 0xffff_ffff;

const isU32 = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n < NO_MODE;

/**
 * What a restore does for each node it restores, numbered in walk order, in columns: where it
 * goes, its type, the metadata to set, and for a file its blobs (a run of BlobRefs) and progress.
 * A restore of many small files kept three objects a file (the item, its metadata and its file
 * record, ~230 bytes with their numbers); the columns take ~60. Symlinks and special files keep
 * their node; metadata that does not fit the columns (extended attributes, a time that is not
 * RFC 3339) is kept as an object for that node alone.
 */
export class RestorePlan {
  count = 0;
  readonly dest: FsPath[] = [];
  #type = new Uint8Array(1024);
  #mode = new Uint32Array(1024);
  #uid = new Uint32Array(1024);
  #gid = new Uint32Array(1024);
  #atime = new Float64Array(1024);
  #mtime = new Float64Array(1024);
  /** A file's first reference in BlobRefs, and how many it has (its blobs, in order). */
  firstRef = new Uint32Array(1024);
  blobs = new Uint32Array(1024);
  size = new Float64Array(1024);
  /** Blobs not yet written, and whether the file failed. */
  remaining = new Uint32Array(1024);
  failed = new Uint8Array(1024);
  /** Symlinks and special files: their nodes. */
  readonly special = new Map<number, Node>();
  /** Metadata that the columns cannot hold. */
  readonly #meta = new Map<number, NodeMeta>();
  /** The second and later names of a hardlinked file: the number of the first. */
  readonly linkTo = new Map<number, number>();

  /** Adds a node to restore at `dest`; returns its number. */
  add(dest: FsPath, node: Node): number {
    if (this.count === this.#type.length) this.#grow();
    const i = this.count++;
    this.dest[i] = dest;
    this.#type[i] = TYPE_CODE.get(node.type) ?? OTHER;
    this.blobs[i] = 0;
    this.size[i] = 0;
    this.remaining[i] = 0;
    this.failed[i] = 0;
    if (node.type !== 'file' && node.type !== 'dir') {
      this.special.set(i, node);
      return i;
    }
    const meta = nodeMeta(node);
    const fits = (meta.mode === undefined || isU32(meta.mode)) && isU32(meta.uid) && isU32(meta.gid) && typeof meta.atime === 'number' && typeof meta.mtime === 'number' && !meta.extended_attributes?.length;
    if (!fits) {
      this.#meta.set(i, meta);
      return i;
    }
    this.#mode[i] = meta.mode ?? NO_MODE;
    this.#uid[i] = meta.uid;
    this.#gid[i] = meta.gid;
    this.#atime[i] = meta.atime as number;
    this.#mtime[i] = meta.mtime as number;
    return i;
  }

  /** Forgets the nodes from number `n` on (a folder in which nothing was selected, with what it held). */
  truncate(n: number): void {
    for (let i = n; i < this.count; i++) {
      this.special.delete(i);
      this.#meta.delete(i);
      this.linkTo.delete(i);
    }
    this.count = n;
    this.dest.length = n;
  }

  type(i: number): NodeType {
    return this.#type[i] === OTHER ? this.special.get(i)!.type : TYPES[this.#type[i]];
  }

  /** The metadata to set on node i. */
  meta(i: number): NodeMeta | Node {
    const kept = this.special.get(i) ?? this.#meta.get(i);
    if (kept) return kept;
    const mode = this.#mode[i];
    return { type: this.type(i), mode: mode === NO_MODE ? undefined : mode, uid: this.#uid[i], gid: this.#gid[i], atime: this.#atime[i], mtime: this.#mtime[i] };
  }

  #grow(): void {
    this.#type = doubled(this.#type);
    this.#mode = doubled(this.#mode);
    this.#uid = doubled(this.#uid);
    this.#gid = doubled(this.#gid);
    this.#atime = doubled(this.#atime);
    this.#mtime = doubled(this.#mtime);
    this.firstRef = doubled(this.firstRef);
    this.blobs = doubled(this.blobs);
    this.size = doubled(this.size);
    this.remaining = doubled(this.remaining);
    this.failed = doubled(this.failed);
  }
}
