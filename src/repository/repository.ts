import { CairnError } from '../errors.js';
import { saveLocalFile, type Backend, type FileType } from '../backend/backend.js';
import { Key } from '../crypto/crypto.js';
import type { KdfParams } from '../crypto/kdf.js';
import { compress, decompress, type CompressionMode } from '../compress/zstd.js';
import { mapLimit } from '../util/limit.js';
import { newConfig, openConfig, sealConfig, type RepoConfig } from './config.js';
import { hashId, ID_PATTERN, type Id } from './id.js';
import type { ScannedIndex } from './index-scan.js';
import { addKey, leftoverMasterKey, openMasterKey } from './keyfile.js';
import type { CachedFileType, LocalCache } from './cache.js';
import { indexJSONLength, MasterIndex, MAX_BLOBS_PER_INDEX, splitIndexFiles, writeIndexJSON, type BlobLocation } from './master-index.js';
import { HeaderBlobs, PackBuilder, type BlobList, type BlobType, type PackedBlob } from './pack.js';
import { decodeUnpackedBytes, encodeUnpacked, encodeUnpackedStream, parseJSON } from './unpacked.js';
import type { Snapshot, SnapshotJSON } from './snapshot.js';
import { snapshotToJSON } from './snapshot.js';
import { decodeTree, type Tree } from './tree.js';
import { parseTime } from '../fs/time.js';

/** Packs are cut at this size: large enough for few files, small enough to upload and retry. */
export const PACK_SIZE = 8 * 1024 * 1024;
const TREE_PACK_SIZE = 4 * 1024 * 1024;
/** Whole tree packs kept in memory while walking snapshots (least recently used go first). */
const TREE_CACHE_BYTES = 24 * 1024 * 1024;
/** A backup writes index files along the way at least this often (see `indexDue`). */
const INDEX_EVERY_PACKS = 64;

export interface OpenOptions {
  compression?: CompressionMode;
  /** A local cache of the parsed index (see cache.ts); none by default. */
  cache?: LocalCache;
}

/**
 * A restic-format repository: config, keys, packs, index files and snapshots on a backend.
 * Writes follow restic's order (packs, then index files, then the snapshot), so a crash never
 * leaves a snapshot that points at missing data.
 */
export class Repository {
  readonly backend: Backend;
  readonly key: Key;
  readonly keyId: Id;
  readonly config: RepoConfig;
  readonly index = new MasterIndex();
  compression: CompressionMode;

  #treePack: PackBuilder | null = null;
  #pendingBlobs = new Map<string, true>();
  /** Packs saved since the last index file, with their blobs kept compactly. */
  #unindexed: { id: Id; blobs: HeaderBlobs }[] = [];
  #unindexedBlobs = 0;
  #indexLoaded = false;
  readonly #cache: LocalCache | undefined;
  /** The cache for snapshot files and tree packs: remote repositories only. */
  readonly #fileCache: LocalCache | undefined;
  #cacheUpkeep: Promise<void> = Promise.resolve();
  #writeGate: Promise<void> = Promise.resolve();
  readonly #treePacks = new Map<Id, Buffer>();
  readonly #treePackLoads = new Map<Id, Promise<Buffer | null>>();
  #treeCacheBytes = 0;

  private constructor(backend: Backend, key: Key, keyId: Id, config: RepoConfig, opts: OpenOptions) {
    this.backend = backend;
    this.key = key;
    this.keyId = keyId;
    this.config = config;
    this.#cache = opts.cache;
    this.#fileCache = backend.local ? undefined : opts.cache;
    this.compression = config.version >= 2 ? (opts.compression ?? 'auto') : 'off';
  }

  /** Creates a new repository (format version 2 unless told otherwise) with one key for `password`. */
  static async init(backend: Backend, password: string, opts: OpenOptions & { version?: 1 | 2; kdf?: KdfParams; polynomial?: bigint } = {}): Promise<Repository> {
    if (password.length === 0) throw new CairnError('BAD_INPUT', 'an empty password is not allowed');
    if (await backend.exists()) throw new CairnError('REPO_EXISTS', `a repository already exists at ${backend.location}`);
    await backend.create();
    // What a failed init left (a key, an empty config) is taken up again: see leftoverMasterKey.
    const resumed = await leftoverMasterKey(backend, password);
    const master = resumed?.key ?? Key.random();
    const keyId = resumed?.keyId ?? (await addKey(backend, master, password, opts.kdf));
    const config = newConfig(opts.version ?? 2, opts.polynomial);
    await backend.save({ type: 'config', name: '' }, sealConfig(master, config));
    const repo = new Repository(backend, master, keyId, config, opts);
    repo.#indexLoaded = true;
    return repo;
  }

  /** Opens an existing repository: `REPO_NOT_FOUND` without a config, `WRONG_PASSWORD` when no key fits. */
  static async open(backend: Backend, password: string, opts: OpenOptions = {}): Promise<Repository> {
    if (!(await backend.exists())) {
      throw new CairnError('REPO_NOT_FOUND', `no repository at ${backend.location}: the config file is missing (run "cairn init" first)`);
    }
    const { key, keyId } = await openMasterKey(backend, password);
    const config = openConfig(key, await backend.load({ type: 'config', name: '' }));
    return new Repository(backend, key, keyId, config, opts);
  }

  /**
   * Opens with the first of `passwords` that opens a key (a password file may stand for more than
   * one, see passwordFileCandidates); when none does, the first one's `WRONG_PASSWORD`. Returns
   * which one opened it.
   */
  static async openWithAny(backend: Backend, passwords: readonly string[], opts: OpenOptions = {}): Promise<{ repo: Repository; which: number }> {
    let first: unknown;
    for (const [which, password] of passwords.entries()) {
      try {
        return { repo: await Repository.open(backend, password, opts), which };
      } catch (err) {
        if (!(err instanceof CairnError && err.code === 'WRONG_PASSWORD')) throw err;
        first ??= err;
      }
    }
    throw first ?? new CairnError('BAD_INPUT', 'no password given');
  }

  /** Loads, verifies and decodes an unpacked file (index, snapshot, lock). */
  async loadJSON<T>(type: Exclude<FileType, 'data' | 'key' | 'config'>, id: Id): Promise<T> {
    return parseJSON<T>((await this.#loadUnpacked(type, id)).toString('utf8'), `${type} ${id}`);
  }

  /** An unpacked file's JSON bytes, checked against its name and decrypted. */
  async #loadUnpacked(type: Exclude<FileType, 'data' | 'key' | 'config'>, id: Id): Promise<Buffer> {
    const load = (): Promise<Buffer> => this.backend.load({ type, name: id });
    const bytes = type === 'snapshot' && this.#fileCache ? await this.#fileCache.loadFile(this.config.id, 'snapshot', id, load) : await load();
    if (hashId(bytes) !== id) throw new CairnError('INTEGRITY', `${type} ${id}: file content does not match its name`);
    const plain = this.key.decrypt(bytes);
    return decodeUnpackedBytes(plain, `${type} ${id}`);
  }

  /**
   * Holds every write but lock files until `gate` resolves (and fails them if it rejects): a
   * backup may walk and hash while its lock waits for racing clients, but stores nothing before.
   */
  gateWrites(gate: Promise<void>): void {
    this.#writeGate = gate;
  }

  /** Encrypts and saves an unpacked file, compressed in format v2; returns its id. */
  async saveJSON(type: Exclude<FileType, 'data' | 'key' | 'config'>, json: string): Promise<Id> {
    return this.#saveUnpacked(type, encodeUnpacked(json, this.config.version >= 2));
  }

  /**
   * Writes index files listing `packs`, as many as MAX_BLOBS_PER_INDEX asks for, the first also
   * superseding `supersedes`; their ids. Each file's JSON is compressed as it is written out, a
   * blob at a time (see writeIndexJSON).
   */
  async saveIndex(packs: readonly { id: Id; blobs: BlobList }[], supersedes: Id[] = []): Promise<Id[]> {
    const ids: Id[] = [];
    for (const f of splitIndexFiles(packs, supersedes)) ids.push(await this.#saveUnpacked('index', encodeUnpackedStream((sink) => writeIndexJSON(f, sink), indexJSONLength(f), this.config.version >= 2)));
    return ids;
  }

  async #saveUnpacked(type: Exclude<FileType, 'data' | 'key' | 'config'>, plain: Buffer): Promise<Id> {
    if (type !== 'lock') await this.#writeGate;
    const sealed = this.key.encrypt(plain);
    const id = hashId(sealed);
    await this.backend.save({ type, name: id }, sealed);
    if (type === 'snapshot') this.#cacheSaved('snapshot', id, sealed);
    return id;
  }

  async listIds(type: FileType): Promise<Id[]> {
    const out: Id[] = [];
    for await (const f of this.backend.list(type)) if (ID_PATTERN.test(f.name)) out.push(f.name);
    return out;
  }

  /**
   * Forgets the loaded index, so the next `loadIndex` reads every index file again: for a repository
   * object others may have written to since (the daemon pruning after a job), and for work that must
   * see each index file as it loads (prune). Only with nothing pending to save.
   */
  forgetIndex(): void {
    if (this.#unindexed.length > 0 || this.#pendingBlobs.size > 0) throw new CairnError('INTERNAL', 'forgetIndex with blobs not yet indexed');
    this.index.clear();
    this.#indexLoaded = false;
  }

  /**
   * Reads every index file into memory (once). `onFile` sees what each file lists, as rows (see
   * index-scan.ts); with `onError`, an index file that fails to load is reported there and skipped
   * instead of failing the call. Without either, and with a cache, the cached table stands in for
   * the index files it was built from, and only newer ones are read; the cache is brought up to
   * date when any were.
   */
  async loadIndex(opts: { onFile?: (id: Id, listed: ScannedIndex) => void; onError?: (id: Id, err: unknown) => void } = {}): Promise<void> {
    if (this.#indexLoaded) return;
    const cache = opts.onFile || opts.onError ? undefined : this.#cache;
    const [ids, cached] = await Promise.all([this.listIds('index'), cache?.readIndex(this.key, this.config.id)]);
    if (cache) this.#afterCommand(() => cache.touch(this.config.id));
    let toRead = ids;
    if (cached) {
      const present = new Set(ids);
      if (cached.indexIds.every((id) => present.has(id))) {
        try {
          this.index.importTable(cached);
          const had = new Set(cached.indexIds);
          toRead = ids.filter((id) => !had.has(id));
        } catch {
          // A table that is not whole is read again from the index files.
        }
      }
    }
    await mapLimit(toRead, 8, async (id) => {
      let listed: ScannedIndex;
      try {
        // Without an object per blob (see MasterIndex.addIndexText).
        listed = this.index.addIndexText(await this.#loadUnpacked('index', id), id);
      } catch (err) {
        if (!opts.onError) throw err;
        opts.onError(id, err);
        return;
      }
      opts.onFile?.(id, listed);
    });
    this.#indexLoaded = true;
    if (cache && toRead.length > 0) {
      const table = { ...this.index.exportTable(), indexIds: ids };
      this.#afterCommand(() => cache.writeIndex(this.key, this.config.id, table));
    }
    // With the whole index read, cached tree packs that no index file lists any more can go.
    if (cache && this.#fileCache) this.#afterCommand(() => cache.retain(this.config.id, 'data', (id) => this.index.hasPack(id)));
  }

  /**
   * Cache upkeep, run while the command goes on, one after the other; close() waits for it. The
   * cache reports its own failures (LocalCache's `warn`); none may fail the command.
   */
  #afterCommand(fn: () => Promise<void>): void {
    this.#cacheUpkeep = this.#cacheUpkeep.then(fn).catch(() => undefined);
  }

  /**
   * Loads one blob, decrypts, decompresses and checks its hash. Tree blobs come from whole tree
   * packs kept in a small cache: walking a snapshot touches thousands of trees in a few packs.
   */
  async loadBlob(type: BlobType, id: Id): Promise<Buffer> {
    const loc = this.index.lookup(type, id);
    if (!loc) throw new CairnError('INTEGRITY', `${type} blob ${id} is not in the index`);
    let sealed: Buffer;
    const pack = type === 'tree' ? await this.#treePackBytes(loc.packId) : null;
    if (pack && loc.offset + loc.length <= pack.length) sealed = pack.subarray(loc.offset, loc.offset + loc.length);
    else sealed = await this.backend.load({ type: 'data', name: loc.packId }, loc.offset, loc.length);
    return this.openBlob(id, loc, sealed);
  }

  /**
   * A blob's plaintext from its sealed bytes as stored at `loc` (for callers that read packs their
   * own way): verified, decrypted, decompressed and hash-checked, or an INTEGRITY error.
   */
  openBlob(id: Id, loc: BlobLocation, sealed: Buffer): Buffer {
    let plain: Buffer;
    try {
      plain = this.key.decrypt(sealed);
    } catch {
      throw new CairnError('INTEGRITY', `${loc.type} blob ${id} in pack ${loc.packId} fails verification`);
    }
    if (loc.uncompressedLength !== undefined) plain = decompress(plain, loc.uncompressedLength);
    if (hashId(plain) !== id) throw new CairnError('INTEGRITY', `${loc.type} blob ${id} in pack ${loc.packId} has the wrong content`);
    return plain;
  }

  async #treePackBytes(packId: Id): Promise<Buffer | null> {
    const hit = this.#treePacks.get(packId);
    if (hit) {
      this.#treePacks.delete(packId);
      this.#treePacks.set(packId, hit);
      return hit;
    }
    let p = this.#treePackLoads.get(packId);
    if (!p) {
      const h = { type: 'data' as const, name: packId };
      const load = async (): Promise<Buffer | null> => {
        const { size } = await this.backend.stat(h);
        return size > TREE_CACHE_BYTES / 4 ? null : this.backend.load(h);
      };
      // A remote repository's tree packs come from the local cache when it has them.
      p = this.#fileCache ? this.#fileCache.loadFile(this.config.id, 'data', packId, load) : load();
      this.#treePackLoads.set(packId, p);
    }
    try {
      const bytes = await p;
      if (bytes && !this.#treePacks.has(packId)) {
        this.#treePacks.set(packId, bytes);
        this.#treeCacheBytes += bytes.length;
        for (const [k, v] of this.#treePacks) {
          if (this.#treeCacheBytes <= TREE_CACHE_BYTES) break;
          this.#treePacks.delete(k);
          this.#treeCacheBytes -= v.length;
        }
      }
      return bytes;
    } finally {
      this.#treePackLoads.delete(packId);
    }
  }

  async loadTree(id: Id): Promise<Tree> {
    return decodeTree(await this.loadBlob('tree', id), id);
  }

  /** Whether a blob is stored or queued to be stored in this session. */
  hasBlob(type: BlobType, id: Id): boolean {
    return this.index.has(type, id) || this.#pendingBlobs.has(MasterIndex.key(type, id));
  }

  /** Seals a blob (compressing in v2) into the main thread's pack; used for trees and small writes. */
  async saveBlob(type: BlobType, plain: Uint8Array, id: Id = hashId(plain)): Promise<{ id: Id; added: boolean; packedSize: number }> {
    if (this.hasBlob(type, id)) return { id, added: false, packedSize: 0 };
    const sealed = this.sealBlob(plain, type);
    this.#treePack ??= new PackBuilder(this.key);
    this.#treePack.add(type, id, sealed.bytes, sealed.uncompressedLength);
    this.#pendingBlobs.set(MasterIndex.key(type, id), true);
    if (this.#treePack.size >= TREE_PACK_SIZE) await this.#flushTreePack();
    return { id, added: true, packedSize: sealed.bytes.length };
  }

  /**
   * Compresses and encrypts a blob of `type`. In a version 2 repository trees are always stored
   * compressed, as restic stores them (its prune repacks every tree pack that holds an uncompressed
   * tree, whatever --compression says); data is compressed unless compression is off or it does
   * not help, or whatever the result with `always` (prune --repack-uncompressed, which would
   * otherwise pick the same packs again every time).
   */
  sealBlob(plain: Uint8Array, type: BlobType, always = false): { bytes: Buffer; uncompressedLength?: number } {
    const compressed = type === 'tree' || always;
    if (this.config.version >= 2 && (compressed || this.compression !== 'off')) {
      const packed = compress(plain, this.compression === 'max' ? 'max' : 'auto', type === 'tree' ? 'json' : 'data');
      if (compressed || packed.length < plain.length) return { bytes: this.key.encrypt(packed), uncompressedLength: plain.length };
    }
    return { bytes: this.key.encrypt(plain) };
  }

  /** Saves a finished pack (built here or by a worker) and queues its blobs for the next index file. */
  async savePack(id: Id, bytes: Uint8Array, blobs: PackedBlob[]): Promise<void> {
    await this.#writeGate;
    await this.backend.save({ type: 'data', name: id }, bytes);
    this.#packSaved(id, blobs);
    for (const b of blobs) this.#pendingBlobs.delete(MasterIndex.key(b.type, b.id));
  }

  /** Saves a finished pack that a worker wrote to the local file `path` (moved or removed once saved). */
  async savePackFile(id: Id, path: string, blobs: HeaderBlobs): Promise<void> {
    await this.#writeGate;
    await saveLocalFile(this.backend, { type: 'data', name: id }, path);
    this.#packSaved(id, blobs);
  }

  #packSaved(id: Id, blobs: BlobList): void {
    this.index.addPack(id, blobs);
    this.#unindexed.push({ id, blobs: blobs instanceof HeaderBlobs ? blobs : HeaderBlobs.of(blobs) });
    this.#unindexedBlobs += blobs.length;
  }

  async #flushTreePack(): Promise<void> {
    const p = this.#treePack;
    this.#treePack = null;
    if (!p || p.count === 0) return;
    const { id, bytes, blobs } = p.finish();
    await this.savePack(id, bytes, blobs);
    this.#cacheSaved('data', id, bytes);
  }

  /** A remote repository's snapshot or tree pack just saved goes into the cache too: the next backup reads it as its parent. */
  #cacheSaved(type: CachedFileType, id: Id, bytes: Uint8Array): void {
    const cache = this.#fileCache;
    if (cache) this.#afterCommand(() => cache.store(this.config.id, type, id, bytes));
  }

  /**
   * Whether the packs saved since the last index file was written should get theirs now: every
   * INDEX_EVERY_PACKS packs, so that an interrupted backup's packs are found later, or once they
   * hold a full index file's blobs, so that many small files do not keep a long list in memory.
   */
  get indexDue(): boolean {
    return this.#unindexed.length >= INDEX_EVERY_PACKS || this.#unindexedBlobs >= MAX_BLOBS_PER_INDEX;
  }

  /** Writes the pending tree pack and index files for every pack saved so far. */
  async flush(): Promise<Id[]> {
    await this.#flushTreePack();
    return this.writeIndex();
  }

  /** Writes index files for the packs saved since the last call. */
  async writeIndex(): Promise<Id[]> {
    const packs = this.#unindexed;
    this.#unindexed = [];
    this.#unindexedBlobs = 0;
    if (packs.length === 0) return [];
    return this.saveIndex(packs);
  }

  async saveSnapshot(s: SnapshotJSON): Promise<Id> {
    return this.saveJSON('snapshot', snapshotToJSON(s));
  }

  async loadSnapshot(id: Id): Promise<Snapshot> {
    const j = await this.loadJSON<SnapshotJSON>('snapshot', id);
    return { ...j, id };
  }

  /** Every snapshot, oldest first. Damaged snapshot files are reported through `onError` and skipped. */
  async listSnapshots(onError?: (id: Id, err: unknown) => void): Promise<Snapshot[]> {
    const ids = await this.listIds('snapshot');
    const cache = this.#fileCache;
    if (cache) {
      // Cached copies of snapshots that are gone (forget) go too.
      const listed = new Set(ids);
      this.#afterCommand(() => cache.retain(this.config.id, 'snapshot', (id) => listed.has(id)));
    }
    const loaded = await mapLimit(ids, 8, async (id) => {
      try {
        return await this.loadSnapshot(id);
      } catch (err) {
        if (!onError) throw err;
        onError(id, err);
        return null;
      }
    });
    // By instant, not by text: fractions are trimmed ("…15.5Z" is before "…15.52Z" in time but
    // after it as text) and zones may differ. A time that does not parse sorts first.
    const instant = (t: string): bigint => {
      try {
        return parseTime(t);
      } catch {
        return -(1n << 80n);
      }
    };
    const snaps = loaded.filter((s): s is Snapshot => s !== null).map((s) => ({ s, t: instant(s.time) }));
    snaps.sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.s.id < b.s.id ? -1 : a.s.id > b.s.id ? 1 : 0));
    return snaps.map((x) => x.s);
  }

  /** Resolves an id, a unique id prefix, or `latest` (optionally filtered) to a file id. */
  async resolveId(type: FileType, ref: string): Promise<Id> {
    const ids = await this.listIds(type);
    if (ID_PATTERN.test(ref) && ids.includes(ref)) return ref;
    const matches = ids.filter((id) => id.startsWith(ref));
    if (ref.length === 0 || matches.length === 0) throw new CairnError('NOT_FOUND', `no ${type} matches ${JSON.stringify(ref)}`);
    if (matches.length > 1) throw new CairnError('BAD_INPUT', `${JSON.stringify(ref)} is ambiguous: it prefixes ${matches.length} ${type} ids`);
    return matches[0];
  }

  async close(): Promise<void> {
    await this.#cacheUpkeep;
    await this.backend.close();
  }
}
