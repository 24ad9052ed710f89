import type { Readable } from 'node:stream';
import { CairnError } from '../errors.js';

/** One object under a store's root. */
export interface StoredObject {
  /** Slash-separated path relative to the root; a key ending in `/` marks an empty folder. */
  key: string;
  size: number;
}

/**
 * Where archive and mirror targets write: a folder or an S3 prefix, seen as flat keys below a root.
 * Keys are slash-separated relative paths without `.` or `..` parts. Errors that mean the store cannot be
 * reached are BACKEND_UNAVAILABLE with a message that names the location.
 */
export interface ObjectStore {
  /** The destination as the user wrote it, for messages. */
  readonly location: string;
  /**
   * Stores `body` under `key`, replacing any object there. Atomic: until the body has been read to its end
   * without error nothing is visible under `key` (folders write a temporary name and rename; S3 completes the
   * upload only after the last part). Resolves to the number of bytes stored.
   */
  put(key: string, body: Readable | Buffer, signal?: AbortSignal): Promise<number>;
  /** The whole object, or undefined when there is none. For small objects (manifests). */
  get(key: string): Promise<Buffer | undefined>;
  /** Every object whose key starts with `prefix` (all when omitted), in no particular order. */
  list(prefix?: string): Promise<StoredObject[]>;
  /** Removes an object; removing one that is not there is not an error. Folders also remove parents left empty. */
  delete(key: string): Promise<void>;
  /** Copies an object within the store without moving its bytes through this process where the store allows. */
  copy(from: string, to: string): Promise<void>;
  /** Moves an object (a rename in a folder; copy and delete on S3). */
  move(from: string, to: string): Promise<void>;
  /** Marks an empty folder (`key` ends in `/`): a folder in a folder, a zero-byte `key/` object on S3. */
  putFolder(key: string): Promise<void>;
  /** Releases connections. */
  close(): void;
}

/** Rejects keys that could reach outside the root. */
export function checkKey(key: string): void {
  const parts = key.replace(/\/$/, '').split('/');
  if (key === '' || key.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new CairnError('BAD_INPUT', `invalid object key ${JSON.stringify(key)}`);
  }
}
