import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { CRYPTO_OVERHEAD, type Key } from '../crypto/crypto.js';
import { ID_PATTERN, type Id } from './id.js';
import type { IndexTable } from './master-index.js';

/**
 * A local cache of what a repository's commands read again and again, one folder per repository
 * (`<dir>/<repository id>/`):
 *
 * - `index`: the parsed index, the blob table that every backup, restore and ls otherwise builds
 *   from all the index files (for the benchmark's 1 GB corpus ~70 ms of a 1.1 s unchanged backup,
 *   and a download of every index file from a remote repository). A magic line, then the table
 *   sealed with the repository's master key (AES-256-CTR + Poly1305-AES, as every repository
 *   file), so the cache tells nobody which blobs the repository holds, and a cache that was
 *   damaged or written with another key fails its MAC and is ignored. Inside: the ids of the index
 *   files the table was built from, the pack ids, the blob count and the table's words, as they
 *   are in memory (not compressed: a fresh process pays more for each buffer it touches than the
 *   disk space is worth). The table is good for as long as every one of those index files still
 *   exists: files added since are read on top of it; when one has gone (prune, repair), the whole
 *   index is read again.
 * - `snapshots/<id>` and `data/<xx>/<id>`: for remote repositories (S3, REST), snapshot files and
 *   the packs of tree blobs, as they are in the repository (encrypted), so that finding the parent
 *   snapshot and walking its trees costs no download. Files never change once written, and each is
 *   named by the SHA-256 of its bytes, which is checked whenever one is read; files the repository
 *   no longer has are removed when the snapshot list or the whole index is read.
 *
 * A cache is never needed: anything wrong with it (missing, unreadable, damaged, another format,
 * an unwritable folder, a full disk) costs the time of reading the repository, never a result.
 */
const MAGIC = Buffer.from('cairn index cache v1\n');
/** Written into the header so that a cache moved to a machine of the other byte order is not read. */
const BYTE_ORDER_MARK = 0x0102_0304;
const HEADER_WORDS = 5;

/** Where the cache lives unless told: CAIRN_CACHE_DIR, else $XDG_CACHE_HOME/cairn, else ~/.cache/cairn (restic's places). */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CAIRN_CACHE_DIR) return env.CAIRN_CACHE_DIR;
  if (env.XDG_CACHE_HOME) return path.join(env.XDG_CACHE_HOME, 'cairn');
  if (process.platform === 'darwin') return path.join(os.homedir(), 'Library', 'Caches', 'cairn');
  return path.join(os.homedir(), '.cache', 'cairn');
}

/** The Cache Directory Tagging Specification's tag: backup tools that honour it (restic and Borg with --exclude-caches) skip the folder. */
const CACHEDIR_TAG = 'Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by cairn.\n# For information about cache directory tags, see https://bford.info/cachedir/\n';

/** A parsed index table and the index files it was built from. */
export interface CachedIndex extends IndexTable {
  indexIds: Id[];
}

/** One repository's part of the cache, as `cairn cache` lists it. */
export interface RepositoryCacheInfo {
  id: Id;
  lastUsed: Date;
  bytes: number;
}

/** Repository files the cache keeps for remote repositories. */
export type CachedFileType = 'snapshot' | 'data';

export class LocalCache {
  readonly dir: string;
  readonly #warn: (message: string) => void;
  #warned = false;

  /** `warn` hears, once, that the cache could not be written (the command goes on without it). */
  constructor(dir: string, warn: (message: string) => void = () => undefined) {
    this.dir = dir;
    this.#warn = warn;
  }

  /** The cached table of the repository `repoId`, or null when there is none that is whole and sealed with `key`. */
  async readIndex(key: Key, repoId: Id): Promise<CachedIndex | null> {
    if (!ID_PATTERN.test(repoId)) return null;
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(path.join(this.dir, repoId, 'index'));
    } catch {
      return null;
    }
    if (bytes.length < MAGIC.length || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return null;
    try {
      // Opened where it was read, and the table copied once, into the shared memory it is used in.
      return decodePayload(key.openInPlace(bytes.subarray(MAGIC.length)));
    } catch {
      return null;
    }
  }

  /** Replaces the cached table of `repoId` (see #put); failures are only warned about. */
  async writeIndex(key: Key, repoId: Id, cached: CachedIndex): Promise<void> {
    if (!ID_PATTERN.test(repoId)) return;
    const payload = encodePayload(cached);
    const out = Buffer.allocUnsafe(MAGIC.length + payload.length + CRYPTO_OVERHEAD);
    MAGIC.copy(out);
    key.encryptInto(payload, out, MAGIC.length);
    await this.#put(path.join(this.dir, repoId, 'index'), out);
  }

  /**
   * A repository file through the cache: the cached copy when there is one whose SHA-256 is its
   * name, otherwise `fetch`'s bytes, which are kept when their SHA-256 is their name (a damaged
   * download is returned for the caller to judge, never kept). `fetch` may decline (null): then
   * nothing is kept.
   */
  async loadFile<B extends Buffer | null>(repoId: Id, type: CachedFileType, name: Id, fetch: () => Promise<B>): Promise<B | Buffer> {
    if (!ID_PATTERN.test(repoId) || !ID_PATTERN.test(name)) return fetch();
    const file = this.#filePath(repoId, type, name);
    const cached = await fs.readFile(file).catch(() => null);
    if (cached && sha256(cached) === name) return cached;
    if (cached) await fs.rm(file, { force: true }).catch(() => undefined);
    const bytes = await fetch();
    if (bytes && sha256(bytes) === name) await this.#put(file, bytes);
    return bytes;
  }

  /** Keeps a file this process has just saved to the repository (`name` is its SHA-256, as the caller computed it). */
  async store(repoId: Id, type: CachedFileType, name: Id, bytes: Uint8Array): Promise<void> {
    if (ID_PATTERN.test(repoId) && ID_PATTERN.test(name)) await this.#put(this.#filePath(repoId, type, name), bytes);
  }

  /** Removes the cached files of `type` that `keep` says the repository no longer has. */
  async retain(repoId: Id, type: CachedFileType, keep: (name: Id) => boolean): Promise<void> {
    if (!ID_PATTERN.test(repoId)) return;
    const top = path.join(this.dir, repoId, type === 'data' ? 'data' : 'snapshots');
    const folders = type === 'data' ? await fs.readdir(top).catch(() => []) : [''];
    for (const folder of folders) await removeWhere(path.join(top, folder), (name, file) => (ID_PATTERN.test(name) ? !keep(name) : leftOver(file)));
  }

  /**
   * Marks the cache of `repoId` as used now (its folder's time), for `list` and `removeOld`, and
   * removes what a write that died left of the index (its temporary files, an hour on).
   */
  async touch(repoId: Id): Promise<void> {
    if (!ID_PATTERN.test(repoId)) return;
    const dir = path.join(this.dir, repoId);
    const now = new Date();
    await fs.utimes(dir, now, now).catch(() => undefined);
    await removeWhere(dir, async (name, file) => name.startsWith('index.tmp-') && (await leftOver(file)));
  }

  /** Every repository's cache: its id, when it was last used and the bytes it holds. */
  async list(): Promise<RepositoryCacheInfo[]> {
    const out: RepositoryCacheInfo[] = [];
    for (const e of await fs.readdir(this.dir, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory() || !ID_PATTERN.test(e.name)) continue;
      const dir = path.join(this.dir, e.name);
      const st = await fs.stat(dir).catch(() => null);
      if (!st) continue;
      let bytes = 0;
      for (const f of await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])) {
        if (f.isFile()) bytes += (await fs.stat(path.join(f.parentPath, f.name)).catch(() => ({ size: 0 }))).size;
      }
      out.push({ id: e.name, lastUsed: st.mtime, bytes });
    }
    return out.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
  }

  /** Removes the caches not used for `maxAgeDays` days; what was removed. */
  async removeOld(maxAgeDays: number): Promise<RepositoryCacheInfo[]> {
    const cutoff = Date.now() - maxAgeDays * 86_400_000;
    const old = (await this.list()).filter((c) => c.lastUsed.getTime() < cutoff);
    for (const c of old) await fs.rm(path.join(this.dir, c.id), { recursive: true, force: true });
    return old;
  }

  #filePath(repoId: Id, type: CachedFileType, name: Id): string {
    return type === 'data' ? path.join(this.dir, repoId, 'data', name.slice(0, 2), name) : path.join(this.dir, repoId, 'snapshots', name);
  }

  /**
   * Writes `bytes` to `file` through a temporary file renamed over it, so a reader sees the old
   * file or the new one, whole. A failure (an unwritable folder, a full disk) leaves nothing
   * behind and is reported through `warn`, once.
   */
  async #put(file: string, bytes: Uint8Array): Promise<void> {
    const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    try {
      await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await fs.writeFile(path.join(this.dir, 'CACHEDIR.TAG'), CACHEDIR_TAG, { flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      await fs.writeFile(tmp, bytes, { mode: 0o600 });
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      if (!this.#warned) {
        this.#warned = true;
        const e = err as NodeJS.ErrnoException;
        this.#warn(`cannot write the cache in ${this.dir}: ${e.code ?? e.message} (going on without it; --no-cache turns it off)`);
      }
    }
  }
}

/** Removes the files in `dir` that `pick` chooses, by name and path; a file that cannot be removed stays. */
async function removeWhere(dir: string, pick: (name: string, file: string) => boolean | Promise<boolean>): Promise<void> {
  for (const name of await fs.readdir(dir).catch(() => [])) {
    const file = path.join(dir, name);
    if (await pick(name, file)) await fs.rm(file, { force: true }).catch(() => undefined);
  }
}

/** A temporary file of a write that died: one an hour old (a write in progress renames its own away within moments). */
async function leftOver(file: string): Promise<boolean> {
  const st = await fs.stat(file).catch(() => null);
  return st !== null && st.isFile() && Date.now() - st.mtimeMs > 3_600_000;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Header words (byte-order mark, index file count, pack count, blob count, table words), then ids and the table. */
function encodePayload(c: CachedIndex): Buffer {
  const out = Buffer.allocUnsafe(HEADER_WORDS * 4 + (c.indexIds.length + c.packIds.length) * 32 + c.table.byteLength);
  // In the machine's byte order, as the table: a reader of the other order finds the mark reversed.
  const header = new Uint32Array([BYTE_ORDER_MARK, c.indexIds.length, c.packIds.length, c.count, c.table.length]);
  Buffer.from(header.buffer).copy(out, 0);
  let at = HEADER_WORDS * 4;
  for (const id of [...c.indexIds, ...c.packIds]) at += out.write(id, at, 'hex');
  Buffer.from(c.table.buffer, c.table.byteOffset, c.table.byteLength).copy(out, at);
  return out;
}

function decodePayload(b: Buffer): CachedIndex | null {
  if (b.length < HEADER_WORDS * 4) return null;
  const [mark, nIndex, nPacks, count, words] = new Uint32Array(Uint8Array.from(b.subarray(0, HEADER_WORDS * 4)).buffer);
  if (mark !== BYTE_ORDER_MARK) return null;
  const tableAt = HEADER_WORDS * 4 + (nIndex + nPacks) * 32;
  if (b.length !== tableAt + words * 4) return null;
  const ids: Id[] = [];
  for (let at = HEADER_WORDS * 4; at < tableAt; at += 32) ids.push(b.toString('hex', at, at + 32));
  const table = new Uint32Array(new SharedArrayBuffer(words * 4));
  new Uint8Array(table.buffer).set(b.subarray(tableAt));
  return { indexIds: ids.slice(0, nIndex), packIds: ids.slice(nIndex), count, table };
}
