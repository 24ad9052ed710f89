import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalBackend } from '../backend/local.js';
import { Repository } from '../repository/repository.js';
import { WorkerPool } from '../repository/worker-pool.js';
import { hashId } from '../repository/id.js';
import { encodeTree } from '../repository/tree.js';
import { formatTime } from '../fs/time.js';
import type { Node } from '../fs/node.js';
import { checkRepository, parseReadDataSubset } from './check.js';
import { readPackHeader } from './repair.js';
import { sealPackHeader, type PackedBlob } from '../repository/pack.js';
import { compress } from '../compress/zstd.js';

/** The folders the repositories below were made in, removed after the file's tests. */
const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.map((d) => fs.rm(d, { recursive: true, force: true })));
});

/** A new local repository holding `count` buffers of random bytes, in packs of about 1 MiB written by `workers` workers. */
async function repositoryWithData(count: number, bytes: number, workers: number): Promise<{ backend: LocalBackend; repo: Repository }> {
  process.env.CAIRN_KDF_N ??= '1024';
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-check-'));
  made.push(dir);
  const backend = new LocalBackend(path.join(dir, 'repo'));
  const repo = await Repository.init(backend, 'pw', { kdf: { N: 1024, r: 8, p: 1 } });
  const pool = new WorkerPool(repo, { workers, packSize: 1024 * 1024 });
  try {
    for (let i = 0; i < count; i++) await pool.saveBuffer(randomBytes(bytes));
    await pool.flush();
  } finally {
    await pool.close();
  }
  await repo.flush();
  return { backend, repo };
}

describe('reading a pack to check it', () => {
  it('from a local file, piece by piece in a worker, finds what checking the loaded bytes finds, whatever the damage', async () => {
    const { backend, repo } = await repositoryWithData(0, 0, 1);
    const pool = new WorkerPool(repo, { workers: 1, packSize: 64 * 1024 * 1024 });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-check-file-'));
    try {
      // One pack: random blobs (stored as they are), compressible ones, and one larger than the
      // worker's read buffer (9 MiB, a chunk's most and a read), which it then grows to.
      for (let i = 0; i < 3; i++) await pool.saveBuffer(randomBytes(200_000));
      for (let i = 0; i < 2; i++) await pool.saveBuffer(Buffer.from(`line ${i} `.repeat(40_000)));
      await pool.saveBuffer(randomBytes(10 * 1024 * 1024));
      // Around the worker's 1 MiB reads, which take runs of small blobs and a larger blob alone: a
      // plaintext past 1 MiB from a small sealed blob, a compressed blob larger than a read, and a
      // blob 10 bytes past one.
      await pool.saveBuffer(Buffer.from('0123456789abcdef'.repeat(3 * 65536)));
      const half = randomBytes(6 * 1024 * 1024);
      for (let i = 0; i < half.length; i += 64) half.fill(0, i, i + 32);
      await pool.saveBuffer(half);
      await pool.saveBuffer(randomBytes(1024 * 1024 + 10 - 32));
      await pool.flush();
      const packs: string[] = [];
      for await (const f of backend.list('data')) packs.push(f.name);
      expect(packs).toHaveLength(1);
      const id = packs[0];
      const good = await backend.load({ type: 'data', name: id });
      const blobs = await readPackHeader(repo, id, good.length);
      expect(blobs).toHaveLength(9);
      expect(blobs.map((b) => [b.length > 1024 * 1024, (b.uncompressedLength ?? 0) > 1024 * 1024])).toEqual([
        [false, false], [false, false], [false, false], [false, false], [false, false], [true, false], [false, true], [true, true], [true, false],
      ]);
      expect(blobs[8].length).toBe(1024 * 1024 + 10);
      const headerStart = blobs[8].offset + blobs[8].length;
      const damaged = (f: (b: Buffer) => Buffer): Buffer => f(Buffer.from(good));
      const flip = (at: number) => (b: Buffer) => ((b[at] ^= 0x01), b);
      const variants: Record<string, Buffer> = {
        intact: good,
        'a byte flipped in the first blob': damaged(flip(40)),
        'a byte flipped in the last blob': damaged(flip(headerStart - 1)),
        'a byte flipped in the header': damaged(flip(headerStart + 20)),
        'cut short': good.subarray(0, good.length - 10),
        'a header length past any header': damaged((b) => (b.writeUInt32LE(0xffffffff, b.length - 4), b)),
        'a header length past the file': damaged((b) => (b.writeUInt32LE(b.length, b.length - 4), b)),
        'bytes appended': Buffer.concat([good, Buffer.alloc(100, 7)]),
        'three bytes': good.subarray(0, 3),
        empty: Buffer.alloc(0),
      };
      for (const [what, bytes] of Object.entries(variants)) {
        const file = path.join(dir, id);
        await fs.writeFile(file, bytes);
        const fromFile = await pool.checkPackFile(id, file);
        const loaded = await pool.checkPack(id, Buffer.from(bytes));
        expect({ errors: fromFile.errors, listing: Buffer.from(fromFile.listing) }, what).toEqual({ errors: loaded.errors, listing: Buffer.from(loaded.listing) });
        if (what === 'intact') {
          expect(fromFile.errors).toEqual([]);
          expect(fromFile.listing.length).toBeGreaterThan(0);
        } else {
          expect(fromFile.errors[0], what).toMatch(new RegExp(`^pack ${id}: content hash is [0-9a-f]{64}, the file is damaged$`));
        }
      }
      await fs.writeFile(path.join(dir, id), variants['a byte flipped in the first blob']);
      const flipped = (await pool.checkPackFile(id, path.join(dir, id))).errors;
      expect(flipped).toEqual([expect.stringContaining('content hash is'), `pack ${id}: ${blobs[0].type} blob ${blobs[0].id} fails verification (damaged ciphertext)`]);
      // The first five blobs are read as one run: damage in its middle names that blob alone.
      await fs.writeFile(path.join(dir, id), damaged(flip(blobs[3].offset + 50)));
      expect((await pool.checkPackFile(id, path.join(dir, id))).errors.slice(1)).toEqual([`pack ${id}: ${blobs[3].type} blob ${blobs[3].id} fails verification (damaged ciphertext)`]);
      await fs.writeFile(path.join(dir, id), variants['a byte flipped in the last blob']);
      expect((await pool.checkPackFile(id, path.join(dir, id))).errors[1]).toBe(`pack ${id}: data blob ${blobs[8].id} fails verification (damaged ciphertext)`);
      // A byte flipped in any blob's IV, ciphertext or tag names that blob and no other.
      for (const [k, b] of blobs.entries()) {
        for (const at of [b.offset + 5, b.offset + Math.floor(b.length / 2), b.offset + b.length - 3]) {
          await fs.writeFile(path.join(dir, id), damaged(flip(at)));
          expect((await pool.checkPackFile(id, path.join(dir, id))).errors.slice(1), `blob ${k} at ${at - b.offset}`).toEqual([`pack ${id}: ${b.type} blob ${b.id} fails verification (damaged ciphertext)`]);
        }
      }
      await expect(pool.checkPackFile(id, path.join(dir, 'gone'))).rejects.toThrow(/ENOENT/);
    } finally {
      await pool.close();
      await repo.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

describe('reading a blob that its MAC vouches for but that is wrong', () => {
  it('names the pack and the blob: plaintext that is not zstd, that decompresses to another size than recorded, or whose hash is not its id', async () => {
    const { repo } = await repositoryWithData(0, 0, 1);
    const pool = new WorkerPool(repo, { workers: 1 });
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-check-wrong-'));
    try {
      // What a faulty writer could store: sealed with the right key, so only what follows the MAC can tell.
      const text = Buffer.from('wrong '.repeat(1000));
      const stored: [Buffer, Omit<PackedBlob, 'offset' | 'length'>][] = [
        [randomBytes(500), { id: hashId(randomBytes(8)), type: 'data', uncompressedLength: 500 }],
        [compress(text), { id: hashId(text), type: 'data', uncompressedLength: text.length + 1 }],
        [text, { id: hashId(randomBytes(8)), type: 'tree' }],
        [compress(text), { id: hashId(text), type: 'data', uncompressedLength: text.length }],
      ];
      const blobs: PackedBlob[] = [];
      const parts: Buffer[] = [];
      let offset = 0;
      for (const [plain, b] of stored) {
        const sealed = repo.key.encrypt(plain);
        blobs.push({ ...b, offset, length: sealed.length });
        parts.push(sealed);
        offset += sealed.length;
      }
      const pack = Buffer.concat([...parts, sealPackHeader(repo.key, blobs)]);
      const id = hashId(pack);
      await fs.writeFile(path.join(dir, id), pack);
      const want = [
        `pack ${id}: data blob ${blobs[0].id}: zstd decompression failed: Unknown frame descriptor`,
        `pack ${id}: data blob ${blobs[1].id}: decompressed size ${text.length} differs from the recorded ${text.length + 1}`,
        `pack ${id}: tree blob ${blobs[2].id} has the wrong content hash`,
      ];
      expect((await pool.checkPackFile(id, path.join(dir, id))).errors).toEqual(want);
      expect((await pool.checkPack(id, pack)).errors).toEqual(want);
    } finally {
      await pool.close();
      await repo.close();
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});

/** A new, empty local repository, and its folder. */
async function emptyRepository(): Promise<{ dir: string; local: LocalBackend; repo: Repository }> {
  process.env.CAIRN_KDF_N ??= '1024';
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-check-'));
  made.push(dir);
  const local = new LocalBackend(path.join(dir, 'repo'));
  return { dir, local, repo: await Repository.init(local, 'pw', { kdf: { N: 1024, r: 8, p: 1 } }) };
}

describe('check', () => {
  it('names every snapshot that reaches a damaged tree, even when trees are shared', async () => {
    const { repo } = await emptyRepository();
    const now = formatTime(BigInt(Date.now()) * 1_000_000n);
    const missing = 'ab'.repeat(32);
    const leaf = encodeTree([{ name: 'file', type: 'file', mode: 0o644, mtime: now, atime: now, ctime: now, uid: 0, gid: 0, size: 3, content: [missing] }]);
    const { id: leafId } = await repo.saveBlob('tree', leaf);
    const mkRoot = async (name: string): Promise<string> =>
      (await repo.saveBlob('tree', encodeTree([{ name, type: 'dir', mode: 2147484141, mtime: now, atime: now, ctime: now, uid: 0, gid: 0, content: null, subtree: leafId }]))).id;
    const a = await mkRoot('a');
    const b = await mkRoot('b');
    await repo.flush();
    const sa = await repo.saveSnapshot({ time: now, tree: a, paths: ['/a'] });
    const sb = await repo.saveSnapshot({ time: now, tree: b, paths: ['/b'] });
    const r = await checkRepository(repo, null);
    // The shared tree is checked once, under whichever snapshot reaches it first.
    expect(r.errors.some((e) => new RegExp(`^file /[ab]/file \\(tree ${leafId}\\): data blob ${missing} not in the index$`).test(e))).toBe(true);
    expect(r.errors).toContain(`snapshot ${sa}: references damaged or missing data`);
    expect(r.errors).toContain(`snapshot ${sb}: references damaged or missing data`);
    expect(r.errors.filter((e) => e.includes(missing))).toHaveLength(1);
  });

  it('names a tree the index lacks once, and every snapshot and folder that reaches it', async () => {
    const { repo } = await emptyRepository();
    const now = formatTime(BigInt(Date.now()) * 1_000_000n);
    const lost = 'cd'.repeat(32);
    const folder = (name: string, subtree: string): Node => ({ name, type: 'dir', mode: 2147484141, mtime: now, atime: now, ctime: now, uid: 0, gid: 0, content: null, subtree });
    const root = (await repo.saveBlob('tree', encodeTree([folder('x', lost), folder('y', lost)]))).id;
    await repo.flush();
    const s1 = await repo.saveSnapshot({ time: now, tree: root, paths: ['/r'] });
    const s2 = await repo.saveSnapshot({ time: now, tree: lost, paths: ['/l'] });
    const s3 = await repo.saveSnapshot({ time: now, tree: 'not an id', paths: ['/n'] });
    for (const readData of [false, true]) {
      const pool = readData ? new WorkerPool(repo) : null;
      try {
        const r = await checkRepository(repo, pool, { readData });
        expect(r.errors.filter((e) => e.includes(lost))).toHaveLength(1);
        expect(r.errors).toHaveLength(5);
        expect(r.errors).toEqual(
          expect.arrayContaining([
            expect.stringMatching(new RegExp(`^tree ${lost} \\((/x|/y|/)\\): not in the index$`)),
            'tree not an id (/): not in the index',
            `snapshot ${s1}: references damaged or missing data`,
            `snapshot ${s2}: references damaged or missing data`,
            `snapshot ${s3}: references damaged or missing data`,
          ]),
        );
      } finally {
        await pool?.close();
      }
    }
  });

  it('with --read-data, takes the trees from the workers that read their packs: loads none again, and names the same damage as the walk that loads them', async () => {
    const { dir, local, repo } = await emptyRepository();
    const now = formatTime(BigInt(Date.now()) * 1_000_000n);
    const meta = { mtime: now, atime: now, ctime: now, uid: 0, gid: 0 };
    const file = (name: string, content: string[]): Node => ({ name, type: 'file', mode: 0o644, ...meta, size: content.length, content });
    const folder = (name: string, subtree: string): Node => ({ name, type: 'dir', mode: 2147484141, ...meta, content: null, subtree });
    const tree = async (nodes: Node[]): Promise<string> => (await repo.saveBlob('tree', encodeTree(nodes))).id;
    const d1 = (await repo.saveBlob('data', randomBytes(100))).id;
    const d2 = (await repo.saveBlob('data', randomBytes(100))).id;
    const missing = 'ab'.repeat(32);
    // In a tree pack of its own, so that loading it loads no other tree.
    const lacking = await tree([file('g', [d2, missing])]);
    await repo.flush();
    const sound = await tree([file('empty', []), file('f1', [d1]), file('f2', [d1, d2, d1]), { name: 'link', type: 'symlink', mode: 134218239, ...meta, content: null, linktarget: 'f1' }]);
    const damaged = await tree([file('h', [d2])]);
    // A chain of folders deeper than a stack of calls would take.
    let deep = await tree([file('bottom', [d1])]);
    for (let i = 0; i < 3000; i++) deep = await tree([folder('d', deep)]);
    const root = await tree([folder('a', sound), folder('deep', deep), folder('ünï\nb', lacking)]);
    const other = await tree([folder('c', damaged), folder('same', sound)]);
    await repo.flush();
    const s1 = await repo.saveSnapshot({ time: now, tree: root, paths: ['/r'] });
    const s2 = await repo.saveSnapshot({ time: now, tree: other, paths: ['/o'] });

    /** check, with the data files the backend loaded for it (a tree is loaded with its pack). */
    const run = async (readData: boolean, filesHere = true): Promise<{ errors: string[]; loads: string[] }> => {
      const loads: string[] = [];
      const counted = new Proxy(local, {
        get(t, p) {
          const v = Reflect.get(t, p, t) as unknown;
          // As a remote repository: packs are loaded here and handed to the workers.
          if (p === 'localPath' && !filesHere) return undefined;
          if (p === 'load' || p === 'loadInto') {
            return (h: { type: string; name: string }, ...rest: unknown[]) => (h.type === 'data' && loads.push(h.name), (v as (...a: unknown[]) => unknown).call(t, h, ...rest));
          }
          return typeof v === 'function' ? v.bind(t) : v;
        },
      });
      const fresh = await Repository.open(counted, 'pw');
      const pool = readData ? new WorkerPool(fresh) : null;
      try {
        const r = await checkRepository(fresh, pool, { readData });
        return { errors: r.errors, loads };
      } finally {
        await pool?.close();
      }
    };
    const walkErrors = (errors: string[]): string[] => errors.filter((e) => !e.startsWith('pack ')).sort();
    const lack = [`file /ünï\nb/g (tree ${lacking}): data blob ${missing} not in the index`, `snapshot ${s1}: references damaged or missing data`];

    const walked = await run(false);
    expect(walkErrors(walked.errors)).toEqual(lack.sort());
    expect(new Set(walked.loads)).toEqual(new Set([repo.index.lookup('tree', lacking)!.packId, repo.index.lookup('tree', root)!.packId]));
    const read = await run(true);
    expect(read.errors.sort()).toEqual(lack.sort());
    // Only the tree with the missing blob was loaded again, to name its file.
    expect(read.loads).toEqual([repo.index.lookup('tree', lacking)!.packId]);
    const loaded = await run(true, false);
    expect(loaded.errors.sort()).toEqual(lack.sort());
    const packs = [...repo.index.packIds()];
    expect(loaded.loads.sort()).toEqual([...packs, repo.index.lookup('tree', lacking)!.packId].sort());

    // A byte flipped in a tree blob: each way names the tree where the snapshots reach it.
    const at = repo.index.lookup('tree', damaged)!;
    const packFile = path.join(dir, 'repo', 'data', at.packId.slice(0, 2), at.packId);
    const bytes = await fs.readFile(packFile);
    bytes[at.offset + 40] ^= 1;
    await fs.writeFile(packFile, bytes);
    const hurt = [...lack, `tree ${damaged} (/c): tree blob ${damaged} in pack ${at.packId} fails verification`, `snapshot ${s2}: references damaged or missing data`].sort();
    expect(walkErrors((await run(false)).errors)).toEqual(hurt);
    const reread = await run(true);
    expect(walkErrors(reread.errors)).toEqual(hurt);
    expect(reread.errors.filter((e) => e.startsWith('pack ')).sort()).toEqual(
      [`pack ${at.packId}: content hash is ${hashId(bytes)}, the file is damaged`, `pack ${at.packId}: tree blob ${damaged} fails verification (damaged ciphertext)`].sort(),
    );
  });

  it('holds the index against the packs, with and without reading data: a listed pack that is gone, a pack no index lists, a blob listed in a pack that lacks it', async () => {
    const { backend, repo } = await repositoryWithData(3, 1536 * 1024, 2);
    const packs = [...repo.index.packIds()].sort();
    expect(packs.length).toBeGreaterThanOrEqual(3);
    const [gone, short] = packs;
    await backend.remove({ type: 'data', name: gone });
    const phantom = hashId(Buffer.from('never stored'));
    await repo.saveJSON('index', JSON.stringify({ packs: [{ id: short, blobs: [{ id: phantom, type: 'data', offset: 0, length: 64 }] }] }));
    const strayBytes = Buffer.from('not a pack');
    const stray = hashId(strayBytes);
    await backend.save({ type: 'data', name: stray }, strayBytes);

    for (const readData of [false, true]) {
      const fresh = await Repository.open(backend, 'pw');
      const checkPool = readData ? new WorkerPool(fresh) : null;
      try {
        const r = await checkRepository(fresh, checkPool, { readData });
        expect(r.errors.sort()).toEqual([`pack ${gone}: does not exist (listed in the index)`, `pack ${short}: data blob ${phantom} listed in the index is not in the pack`].sort());
        expect(r.warnings).toEqual([`pack ${stray}: not referenced in any index`]);
        expect(r.packs).toBe(packs.length);
      } finally {
        await checkPool?.close();
      }
    }
  });

  it('accepts an index that lists the blobs of a pack in another order than its header, or only some of them', async () => {
    // Blobs under the chunker's minimum stay whole: four or so to a pack.
    const { backend, repo } = await repositoryWithData(8, 300 * 1024, 1);
    const packs: { id: string; blobs: PackedBlob[] }[] = [];
    for await (const f of backend.list('data')) packs.push({ id: f.name, blobs: await readPackHeader(repo, f.name, f.size) });
    const [a, b] = packs.filter((p) => p.blobs.length >= 2);
    expect(b).toBeDefined();
    const entry = (p: { id: string }, blobs: PackedBlob[]) => ({ id: p.id, blobs: blobs.map((x) => ({ id: x.id, type: x.type, offset: x.offset, length: x.length, uncompressed_length: x.uncompressedLength })) });
    await repo.saveJSON('index', JSON.stringify({ packs: [entry(a, [...a.blobs].reverse()), entry(b, b.blobs.slice(1))] }));
    for (const readData of [false, true]) {
      const fresh = await Repository.open(backend, 'pw');
      const checkPool = readData ? new WorkerPool(fresh) : null;
      try {
        const r = await checkRepository(fresh, checkPool, { readData });
        expect(r.errors).toEqual([]);
        expect(r.warnings).toEqual([]);
      } finally {
        await checkPool?.close();
      }
    }
    // A blob moved to another offset is named.
    const moved = a.blobs[1];
    await repo.saveJSON('index', JSON.stringify({ packs: [entry(a, [{ ...moved, offset: moved.offset + 1 }])] }));
    for (const readData of [false, true]) {
      const fresh = await Repository.open(backend, 'pw');
      const checkPool = readData ? new WorkerPool(fresh) : null;
      try {
        const r = await checkRepository(fresh, checkPool, { readData });
        expect(r.errors).toEqual([`pack ${a.id}: ${moved.type} blob ${moved.id} listed in the index is not in the pack`]);
      } finally {
        await checkPool?.close();
      }
    }
  });

  it('reads only the packs --read-data-subset chooses, and checks the headers of the others', async () => {
    const { backend } = await repositoryWithData(6, 1536 * 1024, 1);
    const packs: { id: string; size: number }[] = [];
    for await (const f of backend.list('data')) packs.push({ id: f.name, size: f.size });
    expect(packs.length).toBeGreaterThanOrEqual(4);
    // Damage one pack inside a blob (its header stays whole) and another's header.
    const [inBlob, inHeader] = packs;
    const file = (id: string): string => path.join(backend.location, 'data', id.slice(0, 2), id);
    for (const [p, at] of [[inBlob, 100], [inHeader, inHeader.size - 10]] as const) {
      await fs.chmod(file(p.id), 0o600);
      const bytes = await fs.readFile(file(p.id));
      bytes[at] ^= 0xff;
      await fs.writeFile(file(p.id), bytes);
    }
    const check = async (subset: string[]) => {
      const fresh = await Repository.open(backend, 'pw');
      const pool = new WorkerPool(fresh);
      try {
        return await checkRepository(fresh, pool, { readData: true, readSubset: () => new Set(subset) });
      } finally {
        await pool.close();
      }
    };
    const others = packs.filter((p) => p !== inBlob && p !== inHeader).map((p) => p.id);
    // Not read: the damaged blob goes unseen, the damaged header does not.
    const skipped = await check(others);
    expect(skipped.packsRead).toBe(others.length);
    expect(skipped.bytesRead).toBe(packs.filter((p) => others.includes(p.id)).reduce((n, p) => n + p.size, 0));
    expect(skipped.errors).toHaveLength(1);
    expect(skipped.errors[0]).toMatch(new RegExp(`^pack ${inHeader.id}: `));
    // Read: the blob is named.
    const read = await check([inBlob.id]);
    expect(read.packsRead).toBe(1);
    expect(read.errors.some((e) => new RegExp(`^pack ${inBlob.id}: data blob [0-9a-f]{64}`).test(e))).toBe(true);
    expect(read.errors.some((e) => e.startsWith(`pack ${inHeader.id}: `))).toBe(true);
  });
});

describe('parseReadDataSubset', () => {
  const ids = Array.from({ length: 256 }, (_, i) => `${i.toString(16).padStart(2, '0')}${'0'.repeat(62)}`);
  const packs = new Map(ids.map((id, i) => [id, 1000 + i] as const));

  it('n/t picks the packs whose first byte is n-1 modulo t: the groups 1/t..t/t cover every pack once', () => {
    const seen = new Map<string, number>();
    for (let n = 1; n <= 7; n++) {
      const group = parseReadDataSubset(`${n}/7`).select(packs);
      for (const id of group) {
        expect(parseInt(id.slice(0, 2), 16) % 7).toBe(n - 1);
        seen.set(id, (seen.get(id) ?? 0) + 1);
      }
    }
    expect(seen.size).toBe(256);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
    expect(parseReadDataSubset('1/1').select(packs).size).toBe(256);
    expect(parseReadDataSubset('3/256').label).toBe('group #3 of 256');
  });

  it('x% picks that share of the packs at random, at least one', () => {
    let calls = 0;
    const random = (): number => (calls++ * 0.618) % 1;
    const ten = parseReadDataSubset('10%', random).select(packs);
    expect(ten.size).toBe(25);
    expect(calls).toBeGreaterThan(0);
    expect([...ten].every((id) => packs.has(id))).toBe(true);
    expect(parseReadDataSubset('0.1%').select(packs).size).toBe(1);
    expect(parseReadDataSubset('2.5%').select(new Map()).size).toBe(0);
    expect(parseReadDataSubset('100%').select(packs).size).toBe(256);
    // Different draws choose different packs.
    const a = [...parseReadDataSubset('50%').select(packs)].sort().join();
    const b = [...parseReadDataSubset('50%').select(packs)].sort().join();
    expect(a).not.toBe(b);
  });

  it('a size picks random packs until they hold that many bytes', () => {
    const chosen = parseReadDataSubset('10K').select(packs);
    const sizes = [...chosen].map((id) => packs.get(id)!);
    const total = sizes.reduce((n, x) => n + x, 0);
    expect(total).toBeGreaterThanOrEqual(10 * 1024);
    // It stops at the first pack that reaches the size: without the last one drawn (so without the
    // largest, too) the total falls short.
    expect(total - Math.max(...sizes)).toBeLessThan(10 * 1024);
    expect(parseReadDataSubset('1T').select(packs).size).toBe(256);
  });

  it('refuses what it cannot read, naming the flag and the value', () => {
    for (const bad of ['0/5', '6/5', '1/0', '1/257', '0%', '101%', '-1%', 'ten', '', '1/2/3', '5X', '0']) {
      expect(() => parseReadDataSubset(bad), bad).toThrow(expect.objectContaining({ code: 'BAD_INPUT', message: expect.stringContaining(`invalid --read-data-subset ${JSON.stringify(bad)}`) }));
    }
  });
});
