import { rm } from 'node:fs/promises';
import { CairnError } from '../errors.js';
import type { Backend, FileInfo, FileType, Handle } from './backend.js';

/**
 * A backend for `backup --dry-run`: reads go to the repository, writes go nowhere. Saving succeeds
 * without storing anything (a staged pack file is deleted), and removing does nothing, so a backup
 * runs whole (reading, chunking, hashing, compressing, deduplicating against the index and against
 * itself) and reports what it would add, while the repository stays exactly as it was.
 */
export class DryRunBackend implements Backend {
  readonly location: string;
  readonly local?: boolean;
  readonly #inner: Backend;

  constructor(inner: Backend) {
    this.#inner = inner;
    this.location = inner.location;
    this.local = inner.local;
  }

  create(): Promise<void> {
    return Promise.reject(new CairnError('BAD_INPUT', 'a dry run creates nothing'));
  }

  async save(_h: Handle, _data: Uint8Array): Promise<void> {
    // Nothing is stored.
  }

  async saveFile(_h: Handle, path: string): Promise<void> {
    await rm(path, { force: true });
  }

  async replace(_h: Handle, _data: Uint8Array): Promise<void> {
    // Nothing is stored.
  }

  listsAtOnce(): Promise<boolean> {
    return this.#inner.listsAtOnce?.() ?? Promise.resolve(false);
  }

  load(h: Handle, offset?: number, length?: number, signal?: AbortSignal): Promise<Buffer> {
    return this.#inner.load(h, offset, length, signal);
  }

  loadInto(h: Handle, offset: number, into: Buffer, signal?: AbortSignal): Promise<void> {
    if (this.#inner.loadInto) return this.#inner.loadInto(h, offset, into, signal);
    return this.#inner.load(h, offset, into.length, signal).then((b) => void b.copy(into));
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.#inner.stat(h);
  }

  list(type: FileType, signal?: AbortSignal): AsyncIterable<FileInfo> {
    return this.#inner.list(type, signal);
  }

  async remove(_h: Handle): Promise<void> {
    // Nothing is removed.
  }

  exists(): Promise<boolean> {
    return this.#inner.exists();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
