import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalBackend } from '../backend/local.js';
import type { Handle } from '../backend/backend.js';
import { Key } from '../crypto/crypto.js';
import { LocalCache, defaultCacheDir } from './cache.js';
import { Repository } from './repository.js';
import type { PackedBlob } from './pack.js';
import { tempDir } from '../../test/support/tools.js';
import { filesUnder } from '../../test/support/trees.js';

const KDF = { N: 1024, r: 8, p: 1 };

/** A local backend that counts the index files it loads. */
class CountingBackend extends LocalBackend {
  indexLoads = 0;
  override load(h: Handle, offset?: number, length?: number, signal?: AbortSignal): Promise<Buffer> {
    if (h.type === 'index') this.indexLoads++;
    return super.load(h, offset, length, signal);
  }
}

/** Saves a pack (its bytes do not matter here) of `blobs` data blobs and indexes it; the blobs. */
async function savePack(repo: Repository, blobs: number): Promise<PackedBlob[]> {
  const list: PackedBlob[] = Array.from({ length: blobs }, (_, i) => ({ id: randomBytes(32).toString('hex'), type: 'data', offset: i * 100, length: 100, uncompressedLength: i % 2 ? 150 : undefined }));
  await repo.savePack(randomBytes(32).toString('hex'), Buffer.alloc(1), list);
  await repo.writeIndex();
  return list;
}

async function setup(): Promise<{ dir: string; cacheDir: string; blobs: PackedBlob[] }> {
  const dir = await tempDir();
  const repo = await Repository.init(new LocalBackend(dir), 'pw', { kdf: KDF });
  // Enough blobs for the table to grow past its first size.
  const blobs = [...(await savePack(repo, 1500)), ...(await savePack(repo, 10))];
  await repo.close();
  return { dir, cacheDir: path.join(await tempDir(), 'cache'), blobs };
}

async function open(dir: string, cache?: LocalCache): Promise<{ repo: Repository; backend: CountingBackend }> {
  const backend = new CountingBackend(dir);
  const repo = await Repository.open(backend, 'pw', { cache });
  await repo.loadIndex();
  return { repo, backend };
}


/** Every blob's location, sorted, to compare indexes read in different ways. */
function locations(repo: Repository): string[] {
  return [...repo.index.entries()].map(([k, l]) => JSON.stringify([k, l.packId, l.type, l.offset, l.length, l.uncompressedLength])).sort();
}

describe('the local cache', () => {
  it('stands in for the index files it was built from, and reads only newer ones on top', async () => {
    const { dir, cacheDir, blobs } = await setup();
    const plain = await open(dir);
    expect(plain.backend.indexLoads).toBe(2);
    const expected = locations(plain.repo);
    expect(expected).toHaveLength(blobs.length);

    const first = await open(dir, new LocalCache(cacheDir));
    expect(first.backend.indexLoads).toBe(2);
    await first.repo.close();
    const id = first.repo.config.id;
    expect((await fs.readdir(path.join(cacheDir, id))).sort()).toEqual(['index']);
    expect(await fs.readFile(path.join(cacheDir, 'CACHEDIR.TAG'), 'utf8')).toMatch(/^Signature: 8a477f597d28d172789f06886806bc55\n/);
    // Sealed: no blob id appears in the file.
    const bytes = await fs.readFile(path.join(cacheDir, id, 'index'));
    expect(bytes.includes(Buffer.from(blobs[0].id, 'hex'))).toBe(false);

    const hit = await open(dir, new LocalCache(cacheDir));
    expect(hit.backend.indexLoads).toBe(0);
    expect(locations(hit.repo)).toEqual(expected);
    expect(hit.repo.index.lookup('data', blobs[7].id)).toMatchObject({ offset: 700, length: 100, uncompressedLength: 150 });
    // A new index file is read on top of the cached table, and the cache then holds it too.
    const more = await savePack(hit.repo, 3);
    await hit.repo.close();
    const partial = await open(dir, new LocalCache(cacheDir));
    expect(partial.backend.indexLoads).toBe(1);
    expect(locations(partial.repo)).toEqual(locations((await open(dir)).repo));
    expect(partial.repo.index.has('data', more[2].id)).toBe(true);
    await partial.repo.close();
    expect((await open(dir, new LocalCache(cacheDir))).backend.indexLoads).toBe(0);
  });

  it('is read again from the index files when one it was built from has gone', async () => {
    const { dir, cacheDir, blobs } = await setup();
    await (await open(dir, new LocalCache(cacheDir))).repo.close();
    // What prune and repair do: an index file replaced by one that lists less.
    for (const f of await fs.readdir(path.join(dir, 'index'))) await fs.rm(path.join(dir, 'index', f));
    await savePack(await Repository.open(new LocalBackend(dir), 'pw'), 2);

    const after = await open(dir, new LocalCache(cacheDir));
    expect(after.backend.indexLoads).toBe(1);
    expect(after.repo.index.size).toBe(2);
    expect(after.repo.index.has('data', blobs[0].id)).toBe(false);
  });

  it('is ignored when damaged, written with another key, of another format, or unreadable, and then rewritten', async () => {
    const { dir, cacheDir } = await setup();
    const expected = locations((await open(dir)).repo);
    const first = await open(dir, new LocalCache(cacheDir));
    await first.repo.close();
    const file = path.join(cacheDir, first.repo.config.id, 'index');
    const good = await fs.readFile(file);

    const flipped = Buffer.from(good);
    flipped[flipped.length - 100] ^= 1;
    const otherKey = Buffer.concat([good.subarray(0, 21), Key.random().encrypt(Buffer.from('not a table'))]);
    for (const bad of [flipped, good.subarray(0, good.length - 1), otherKey, Buffer.from('cairn index cache v9\n'), Buffer.alloc(0)]) {
      await fs.writeFile(file, bad);
      const r = await open(dir, new LocalCache(cacheDir));
      expect(r.backend.indexLoads).toBe(2);
      expect(locations(r.repo)).toEqual(expected);
      await r.repo.close();
      // Rewritten whole: the next open reads no index file.
      expect((await open(dir, new LocalCache(cacheDir))).backend.indexLoads).toBe(0);
    }
    // A folder where the file should be: read as no cache, and the write's failure only warned about.
    await fs.rm(file);
    await fs.mkdir(file);
    const warnings: string[] = [];
    const r = await open(dir, new LocalCache(cacheDir, (w) => warnings.push(w)));
    expect(locations(r.repo)).toEqual(expected);
    await r.repo.close();
    expect(warnings).toEqual([expect.stringMatching(/^cannot write the cache in .*: EISDIR \(going on without it; --no-cache turns it off\)$/)]);
  });

  it('warns once and goes on when its folder cannot be made', async () => {
    const { dir } = await setup();
    const notADir = path.join(await tempDir(), 'file');
    await fs.writeFile(notADir, 'x');
    const warnings: string[] = [];
    const cache = new LocalCache(path.join(notADir, 'cache'), (w) => warnings.push(w));
    for (let i = 0; i < 2; i++) {
      const r = await open(dir, cache);
      expect(r.repo.index.size).toBe(1510);
      await r.repo.close();
    }
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('ENOTDIR');
  });

  it('is neither used nor written by loads that must see every index file', async () => {
    const { dir, cacheDir } = await setup();
    const cache = new LocalCache(cacheDir);
    for (let i = 0; i < 2; i++) {
      const backend = new CountingBackend(dir);
      const repo = await Repository.open(backend, 'pw', { cache });
      const seen: string[] = [];
      await repo.loadIndex({ onFile: (id) => seen.push(id) });
      await repo.close();
      expect(seen).toHaveLength(2);
      expect(backend.indexLoads).toBe(2);
      await expect(fs.access(cacheDir)).rejects.toThrow(/ENOENT/);
    }
    await (await open(dir, cache)).repo.close();
    const backend = new CountingBackend(dir);
    await (await Repository.open(backend, 'pw', { cache })).loadIndex({ onError: () => undefined });
    expect(backend.indexLoads).toBe(2);
  });

  it('keeps files named by their SHA-256, serves them from disk, and drops damaged or unwanted ones', async () => {
    const cacheDir = path.join(await tempDir(), 'cache');
    const cache = new LocalCache(cacheDir);
    const repoId = randomBytes(32).toString('hex');
    const bytes = randomBytes(5000);
    const name = createHash('sha256').update(bytes).digest('hex');
    let fetches = 0;
    const fetch = async (): Promise<Buffer> => {
      fetches++;
      return bytes;
    };
    expect(await cache.loadFile(repoId, 'data', name, fetch)).toEqual(bytes);
    expect(await cache.loadFile(repoId, 'data', name, fetch)).toEqual(bytes);
    expect(fetches).toBe(1);
    const file = path.join(cacheDir, repoId, 'data', name.slice(0, 2), name);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);

    // A damaged copy is fetched again and replaced.
    await fs.writeFile(file, Buffer.concat([bytes.subarray(0, 100), Buffer.from([bytes[100] ^ 1]), bytes.subarray(101)]));
    expect(await cache.loadFile(repoId, 'data', name, fetch)).toEqual(bytes);
    expect(fetches).toBe(2);
    expect(await fs.readFile(file)).toEqual(bytes);

    // A download that does not match its name is returned for the caller to judge, never kept; a declined one keeps nothing.
    const other = randomBytes(32).toString('hex');
    expect(await cache.loadFile(repoId, 'snapshot', other, async () => bytes)).toEqual(bytes);
    expect(await cache.loadFile(repoId, 'snapshot', other, async () => null)).toBeNull();
    await expect(fs.access(path.join(cacheDir, repoId, 'snapshots', other))).rejects.toThrow(/ENOENT/);

    const snap = createHash('sha256').update('s').digest('hex');
    await cache.loadFile(repoId, 'snapshot', snap, async () => Buffer.from('s'));
    // Temporary files: one left by a crash an hour ago goes, one being written now stays.
    const crashed = path.join(cacheDir, repoId, 'snapshots', `${snap}.tmp-1-x`);
    const writing = path.join(cacheDir, repoId, 'snapshots', `${snap}.tmp-2-y`);
    await fs.writeFile(crashed, 'left by a crash');
    await fs.utimes(crashed, new Date(Date.now() - 7_200_000), new Date(Date.now() - 7_200_000));
    await fs.writeFile(writing, 'being written');
    await cache.retain(repoId, 'data', () => false);
    await expect(fs.access(file)).rejects.toThrow(/ENOENT/);
    expect(await fs.readdir(path.join(cacheDir, repoId, 'snapshots'))).toHaveLength(3);
    await cache.retain(repoId, 'snapshot', (id) => id === snap);
    expect((await fs.readdir(path.join(cacheDir, repoId, 'snapshots'))).sort()).toEqual([snap, path.basename(writing)].sort());
  });

  it('on a full disk: a warning naming ENOSPC, nothing half written left behind, and the index read as without a cache', async () => {
    const { dir } = await setup();
    const disk = await tempDir();
    // A real full file system: a small tmpfs (root only, as in CI).
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=128k', 'tmpfs', disk]).status === 0;
    if (!mounted) {
      if (process.env.CI === 'true') throw new Error('mounting a tmpfs failed: this test needs root in CI');
      console.warn('skipped: mounting a tmpfs needs root');
      return;
    }
    try {
      await fs.writeFile(path.join(disk, 'filler'), Buffer.alloc(100 * 1024));
      const warnings: string[] = [];
      const r = await open(dir, new LocalCache(path.join(disk, 'cache'), (w) => warnings.push(w)));
      await r.repo.close();
      expect(r.repo.index.size).toBe(1510);
      expect(warnings).toEqual([expect.stringMatching(/^cannot write the cache in .*: ENOSPC \(going on without it; --no-cache turns it off\)$/)]);
      expect(await filesUnder(disk)).toEqual(['cache/CACHEDIR.TAG', 'filler']);
    } finally {
      spawnSync('umount', [disk]);
    }
  });

  it('clears what an index write that died left behind, once it is an hour old', async () => {
    const { dir, cacheDir } = await setup();
    const first = await open(dir, new LocalCache(cacheDir));
    await first.repo.close();
    const folder = path.join(cacheDir, first.repo.config.id);
    const hourAgo = new Date(Date.now() - 3_700_000);
    await fs.writeFile(path.join(folder, 'index.tmp-1-dead'), 'half');
    await fs.utimes(path.join(folder, 'index.tmp-1-dead'), hourAgo, hourAgo);
    await fs.writeFile(path.join(folder, 'index.tmp-2-busy'), 'being written');
    const again = await open(dir, new LocalCache(cacheDir));
    await again.repo.close();
    expect(again.backend.indexLoads).toBe(0);
    expect((await fs.readdir(folder)).sort()).toEqual(['index', 'index.tmp-2-busy']);
  });

  it('lives where restic users look for caches', () => {
    expect(defaultCacheDir({ CAIRN_CACHE_DIR: '/x/c' })).toBe('/x/c');
    expect(defaultCacheDir({ XDG_CACHE_HOME: '/x' })).toBe(path.join('/x', 'cairn'));
    if (process.platform === 'linux') expect(defaultCacheDir({})).toMatch(/\/\.cache\/cairn$/);
  });
});
