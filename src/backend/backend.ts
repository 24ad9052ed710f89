/**
 * A backend stores a repository's files. It knows nothing about the format: it saves, loads
 * (whole or a byte range), stats, lists and removes named files. Wrappers (retry, limiter,
 * fault injection) implement this same interface and compose.
 *
 * Every backend must pass `runBackendConformance` (backend/conformance.ts) unchanged.
 */
import { readFile, rm } from 'node:fs/promises';

/** The kinds of file in a repository; `config` has exactly one file, named ''. */
export type FileType = 'config' | 'key' | 'lock' | 'snapshot' | 'index' | 'data';

export const FILE_TYPES: readonly FileType[] = ['config', 'key', 'lock', 'snapshot', 'index', 'data'];

/** Names a file: its type and, except for `config`, its 64-character lowercase hex id. */
export interface Handle {
  readonly type: FileType;
  readonly name: string;
}

export interface FileInfo {
  readonly name: string;
  readonly size: number;
}

export interface Backend {
  /** A human-readable location, free of credentials, for messages. */
  readonly location: string;

  /**
   * True for a repository on this machine's file system, where reading a file costs no more than
   * reading a cached copy would: the local cache then keeps only the parsed index (see
   * repository/cache.ts).
   */
  readonly local?: boolean;

  /**
   * Optional: whether a file, once saved, is in every other client's listing at once. A folder on
   * a local disk (ext4, xfs, btrfs, tmpfs, zfs…) says yes; network and FUSE file systems, object
   * stores and servers are not trusted to, and locking then waits as restic does before it looks
   * again for a racing client's lock (see repository/lock.ts).
   */
  listsAtOnce?(): Promise<boolean>;

  /**
   * Creates the repository's layout (folders or markers). Fails with `REPO_EXISTS` when a
   * `config` file is already there; until then it may run again (an interrupted `init`).
   */
  create(): Promise<void>;

  /**
   * Stores `data` under `h`, atomically: readers see either nothing or the whole file, never a
   * part, even when the process dies half way. Durable when the promise resolves (fsync or the
   * remote's acknowledgement). Saving a name that exists with other content fails with
   * `BAD_INPUT`, unless `data` hashes to the name and the file there therefore does not (the
   * leftover of a save that failed half way, or damage: it is replaced, see replacesLeftover);
   * saving identical content again (a retry) must succeed. An aborted `signal` rejects
   * with `INTERRUPTED` and leaves nothing behind. A name that is not 64 lowercase hex characters
   * (or not '' for `config`) is `BAD_INPUT`.
   */
  save(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void>;

  /**
   * Optional: a folder on the repository's own file system where a caller may prepare a file for
   * `saveFile`, so that saving it is a rename rather than a copy. Files there whose names are not
   * ids are never listed. Callers clean up after themselves (see repository/staging.ts).
   */
  readonly stagingFolder?: string;

  /**
   * Optional: stores the content of the local file at `path` under `h`, with every guarantee of
   * `save` (atomic, durable, no overwrite with other content, idempotent). On success the file at
   * `path` is gone (moved into the repository or removed); on failure it may still be there, for
   * the caller to retry or remove. Use `saveLocalFile`, which falls back to `save` for backends
   * without this method.
   */
  saveFile?(h: Handle, path: string, signal?: AbortSignal): Promise<void>;

  /**
   * Optional: stores `data` under `h` in place of the file there (or as a new file), atomically:
   * readers, and a crash at any moment, see the old file or the new one, never neither and never a
   * part. Only a format upgrade rewrites a file (`config`, see maintenance/migrate.ts). A local
   * folder renames over the old file; S3 puts the object again. Use `replaceFile`, which removes
   * and then saves on backends without it (a REST server refuses overwrites), as restic does.
   */
  replace?(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void>;

  /**
   * Returns `length` bytes from `offset` (whole file from `offset` when `length` is undefined).
   * Fails with `NOT_FOUND` when the file does not exist, and with `INTEGRITY` when the file is
   * shorter than `offset + length` (never returns a short buffer silently). Idempotent.
   */
  load(h: Handle, offset?: number, length?: number, signal?: AbortSignal): Promise<Buffer>;

  /**
   * Optional: as `load` of `into.length` bytes from `offset`, read into the caller's buffer, so
   * that readers can reuse a few buffers instead of allocating one per range. Use `loadRange`,
   * which falls back to `load` for backends without this method.
   */
  loadInto?(h: Handle, offset: number, into: Buffer, signal?: AbortSignal): Promise<void>;

  /**
   * Optional: where a stored file is on this machine's file system, for a reader that reads it
   * itself (a worker thread checking or restoring out of a pack, see maintenance/check.ts and
   * restorer/restorer.ts). Fails as `load` would when the file is not there. Only backends whose
   * files are plain local files have it; wrappers pass it on only where reading around them
   * changes nothing (not under a download limit).
   */
  readonly localPath?: (h: Handle) => Promise<string>;

  /** Size of a file; `NOT_FOUND` when it does not exist. */
  stat(h: Handle): Promise<FileInfo>;

  /**
   * Every file of one type, in no particular order. Files being written (temporary files) are
   * never listed. A file saved before the call started is always listed. For `config` it yields
   * `{ name: '', size }` once the file exists.
   */
  list(type: FileType, signal?: AbortSignal): AsyncIterable<FileInfo>;

  /** Removes a file. Removing a file that does not exist succeeds (idempotent). */
  remove(h: Handle): Promise<void>;

  /** Whether the repository exists: its `config` file is present and not empty (an init that failed may leave an empty one). */
  exists(): Promise<boolean>;

  /** Releases connections and handles. The backend is unusable afterwards. */
  close(): Promise<void>;
}

/**
 * Stores the local file at `path` under `h` and removes the file: by the backend's own `saveFile`
 * when it has one (a rename for a local repository), otherwise by reading it and calling `save`.
 */
export async function saveLocalFile(backend: Backend, h: Handle, path: string, signal?: AbortSignal): Promise<void> {
  if (backend.saveFile) return backend.saveFile(h, path, signal);
  await backend.save(h, await readFile(path), signal);
  await rm(path, { force: true });
}

/**
 * Puts `data` in place of the file at `h`: by the backend's atomic `replace` when it has one,
 * otherwise by removing the file and saving the new one (a crash between the two leaves no file,
 * so callers keep the old content elsewhere until this returns).
 */
export async function replaceFile(backend: Backend, h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
  if (backend.replace) return backend.replace(h, data, signal);
  await backend.remove(h);
  await backend.save(h, data, signal);
}

/**
 * `length` bytes of a file from `offset`: read into `into` (its first `length` bytes, returned as
 * a view) when the backend can, otherwise loaded into a buffer of its own.
 */
export async function loadRange(backend: Backend, h: Handle, offset: number, length: number, into?: Buffer, signal?: AbortSignal): Promise<Buffer> {
  if (!into || !backend.loadInto || into.length < length) return backend.load(h, offset, length, signal);
  const view = into.subarray(0, length);
  await backend.loadInto(h, offset, view, signal);
  return view;
}
