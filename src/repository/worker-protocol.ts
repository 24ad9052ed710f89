import type { KeyRaw } from '../crypto/crypto.js';
import type { CompressionMode } from '../compress/zstd.js';
import type { Id } from './id.js';

/** Everything a blob worker needs; posted once as workerData. */
/**
 * Files up to this size are saved in batches: one message to a worker and one answer for many
 * files, where a message each cost the main thread and the workers more than reading the file.
 */
export const SMALL_FILE = 64 * 1024;

export interface WorkerInit {
  key: KeyRaw;
  polynomial: string;
  compression: CompressionMode;
  packSize: number;
  /** Where this worker writes its data packs: a folder and a file name prefix (see staging.ts). */
  staging: { folder: string; prefix: string };
  /** Ask the kernel not to update atime while reading sources (needs ownership or root). */
  noatime: boolean;
  /**
   * `always`: a batch's small files are read on libuv's threads as it arrives (tests use it to
   * exercise that path); `auto` (default): only while reads are found slow (a cold cache).
   */
  readAhead?: 'auto' | 'always';
  /** The index's blob table (MasterIndex.table): blobs already stored are not stored again. */
  index: SharedArrayBuffer;
  /** The pool's claims on new blobs, shared by its workers (see claims.ts). */
  claims: SharedArrayBuffer;
}

/** A blob to open out of a loaded pack range; `offset` is relative to the range. */
export interface OpenBlob {
  id: Id;
  offset: number;
  length: number;
  uncompressedLength?: number;
}

export type Request =
  /** A worker started without workerData (see prewarmWorkers) gets its settings first. */
  | { op: 'init'; init: WorkerInit }
  | { op: 'file'; seq: number; path: string | Uint8Array }
  /** Small files; `sizes` as the walk saw them (see saveFiles in blob-worker.ts). */
  | { op: 'files'; seq: number; paths: (string | Uint8Array)[]; sizes: number[] }
  | { op: 'buffer'; seq: number; data: ArrayBuffer }
  | { op: 'flush'; seq: number }
  | { op: 'index'; table: SharedArrayBuffer }
  | { op: 'packSaved'; id: Id }
  | { op: 'open'; seq: number; data: ArrayBuffer; blobs: OpenBlob[] }
  | { op: 'checkPack'; seq: number; id: Id; data: ArrayBuffer; length: number; trees?: boolean }
  | { op: 'checkPackFile'; seq: number; id: Id; path: string; trees?: boolean }
  | { op: 'verifyFile'; seq: number; path: string; blobs: { id: Id; size: number }[] }
  | { op: 'restoreBlobs'; seq: number; data: ArrayBuffer; blobs: RestoreBlob[] }
  | { op: 'restoreBlobsFile'; seq: number; path: string; blobs: RestoreBlob[] }
  | { op: 'fsBatch'; seq: number; ops: FsOp[] };

/** Where a restored blob goes. `create` is set when this write creates the file (with that size). */
export interface RestoreDest {
  path: string | Uint8Array;
  offset: number;
  create?: number;
}

export interface RestoreBlob extends OpenBlob {
  dests: RestoreDest[];
}

/** restic's restore --overwrite: when a file that is already in the target is replaced. */
export type OverwriteMode = 'always' | 'if-changed' | 'if-newer' | 'never';
export const OVERWRITE_MODES: readonly OverwriteMode[] = ['always', 'if-changed', 'if-newer', 'never'];

/** A modification time in whole microseconds (what a restore sets): seconds as a double, or nanoseconds. */
export function microseconds(t: number | bigint): number {
  return typeof t === 'bigint' ? Number(t / 1000n) : Math.floor(t * 1e6);
}

/**
 * Whether the overwrite mode leaves what is at a node's place as it is: `never` always, `if-newer`
 * unless the node's modification time (seconds; null when it does not parse) is later than that
 * of what is there (nanoseconds), by more than a microsecond.
 */
export function keepsExisting(mode: OverwriteMode, nodeMtime: number | null, existingMtimeNs: bigint): boolean {
  if (mode === 'never') return true;
  if (mode !== 'if-newer') return false;
  return !(nodeMtime !== null && microseconds(nodeMtime) > microseconds(existingMtimeNs) + 1);
}

/**
 * What a restore finds where a file goes: nothing; something the overwrite mode leaves alone; the
 * file with the right content (or, with `if-changed`, its size and modification time); something
 * else (another file, a symlink, an empty folder); or a folder with entries in it.
 */
export type ProbeResult = 'absent' | 'skip' | 'same' | 'differs' | 'busy-dir';

/**
 * File-system work done in a worker with synchronous calls: one message for hundreds of files,
 * instead of a libuv round trip per call. Results: null (done), an error message, for `check`
 * whether the file already holds exactly these blobs, and for `probe` a ProbeResult (`{probe}`).
 */
export type FsOp =
  | { op: 'create'; path: string | Uint8Array; size: number }
  | { op: 'check'; path: string | Uint8Array; size: number; blobs: { id: Id; size: number }[] }
  | { op: 'probe'; path: string | Uint8Array; size: number; blobs: { id: Id; size: number }[]; mtime: number | null; overwrite: OverwriteMode }
  | { op: 'meta'; path: string | Uint8Array; node: import('../fs/apply.js').NodeMeta; owner: boolean };

/** What saving one file or buffer produced. */
export interface SaveResult {
  content: Id[];
  size: number;
  blobsNew: number;
  bytesNew: number;
  bytesPacked: number;
}

/** Per file of a `files` batch: what saving it produced, or why it could not be read. */
export type BatchFileResult = SaveResult | { error: string; errno?: string };

export interface OpenResult {
  /** Plaintexts of the blobs that opened, back to back, in request order. */
  data: ArrayBuffer;
  /** Per blob: its plaintext length in `data`, or -1 when it failed (see `errors`). */
  lengths: number[];
  errors: (string | null)[];
}

/** What restoreBlobs and restoreBlobsFile did. */
export interface RestoreBlobsResult {
  /** Per blob, in request order: its error, or null when it went everywhere it goes. */
  errors: (string | null)[];
  written: number;
  /**
   * Set when a write found the target full, read-only or gone (see writesStop), with what it
   * wrote: the blobs from that one on were not tried and have no entry in `errors`.
   */
  stopped?: { code: 'NO_SPACE' | 'UNWRITABLE'; message: string };
}

export interface CheckPackResult {
  /** The pack's header as listing records (see LISTING_RECORD in pack.ts); empty when it could not be read. */
  listing: Uint8Array;
  errors: string[];
  /** When asked for: the facts of the pack's sound tree blobs (see tree-facts.ts). */
  trees?: Uint8Array;
}

export type Reply =
  | { op: 'done'; seq: number; result: unknown; lent?: ArrayBuffer }
  /** `fatal`: the worker lost a pack it was writing, so blobs it claimed will never be saved: the pool fails. */
  | { op: 'error'; seq: number; message: string; code?: string; errno?: string; lent?: ArrayBuffer; fatal?: boolean }
  /** A filled pack, staged at `path`; its blobs as its header's plaintext (see HeaderBlobs). */
  | { op: 'pack'; id: Id; path: string; length: number; header: ArrayBuffer; count: number }
  | { op: 'loaded' };
