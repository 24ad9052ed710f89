import { createHash, randomBytes, randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Backend, FileType, Handle } from './backend.js';
import { FILE_TYPES, loadRange, replaceFile, saveLocalFile } from './backend.js';

/** A backend under test and how to throw it away. */
export interface BackendFixture {
  backend: Backend;
  cleanup: () => Promise<void>;
}

const CONFIG: Handle = { type: 'config', name: '' };
const ID_TYPES = FILE_TYPES.filter((t) => t !== 'config');
const SIZES = [0, 1, 1024 * 1024 + 1, 20 * 1024 * 1024];

function randomName(): string {
  return randomBytes(32).toString('hex');
}

function digest(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function listed(b: Backend, t: FileType, signal?: AbortSignal): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for await (const f of b.list(t, signal)) {
    expect(m.has(f.name), `${t} ${f.name} listed twice`).toBe(false);
    m.set(f.name, f.size);
  }
  return m;
}

/** The `code` of the error a promise rejects with, or undefined when it resolves. */
async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? `no code: ${String(err)}`;
  }
}

/**
 * The contract of `Backend` (backend.ts) as tests. Every backend runs this suite unchanged; a new
 * backend is done when it passes. `make` returns a backend on a fresh, empty location each time.
 */
export function runBackendConformance(name: string, make: () => Promise<BackendFixture>): void {
  const withBackend = (fn: (b: Backend) => Promise<void>) => async () => {
    const { backend, cleanup } = await make();
    try {
      await fn(backend);
    } finally {
      await backend.close();
      await cleanup();
    }
  };

  describe(`backend conformance: ${name}`, () => {
    it(
      'creates a repository; exists() follows the config file; create fails with REPO_EXISTS once config is saved',
      withBackend(async (b) => {
        expect(b.location).not.toBe('');
        expect(await b.exists()).toBe(false);
        await b.create();
        expect(await b.exists()).toBe(false);
        // An init that stopped before saving config can be run again.
        await b.create();
        await b.save(CONFIG, Buffer.from('config bytes'));
        expect(await b.exists()).toBe(true);
        expect(await code(b.create())).toBe('REPO_EXISTS');
        expect((await b.load(CONFIG)).toString()).toBe('config bytes');
        expect(await b.stat(CONFIG)).toEqual({ name: '', size: 12 });
        expect([...(await listed(b, 'config'))]).toEqual([['', 12]]);
      }),
    );

    it(
      'lists nothing for every type of an empty repository',
      withBackend(async (b) => {
        await b.create();
        for (const t of FILE_TYPES) expect((await listed(b, t)).size, t).toBe(0);
      }),
    );

    for (const t of ID_TYPES) {
      it(
        `round trips ${t} files of ${SIZES.join(', ')} bytes; stat and list report exactly them`,
        withBackend(async (b) => {
          await b.create();
          const saved = new Map<string, { size: number; digest: string }>();
          for (const size of SIZES) {
            const data = randomBytes(size);
            const h: Handle = { type: t, name: randomName() };
            await b.save(h, data);
            saved.set(h.name, { size, digest: digest(data) });
          }
          const l = await listed(b, t);
          expect(new Map([...l].sort())).toEqual(new Map([...saved].map(([n, f]) => [n, f.size] as const).sort()));
          for (const [n, f] of saved) {
            const h: Handle = { type: t, name: n };
            expect(digest(await b.load(h))).toBe(f.digest);
            expect(await b.stat(h)).toEqual({ name: n, size: f.size });
          }
          for (const other of FILE_TYPES.filter((o) => o !== t)) expect((await listed(b, other)).size, other).toBe(0);
        }),
      );
    }

    it(
      `round trips a config file of ${SIZES.join(', ')} bytes (saved, then removed, in turn)`,
      withBackend(async (b) => {
        await b.create();
        for (const size of SIZES) {
          const data = randomBytes(size);
          await b.save(CONFIG, data);
          expect(digest(await b.load(CONFIG))).toBe(digest(data));
          expect(await b.stat(CONFIG)).toEqual({ name: '', size });
          expect([...(await listed(b, 'config'))]).toEqual([['', size]]);
          await b.remove(CONFIG);
          expect(await b.exists()).toBe(false);
        }
      }),
    );

    it(
      'replaceFile puts new content in place of the config file (atomically where the backend has replace); other files are untouched',
      withBackend(async (b) => {
        await b.create();
        await b.save(CONFIG, Buffer.from('version 1 config'));
        const other: Handle = { type: 'snapshot', name: randomName() };
        await b.save(other, Buffer.from('a snapshot'));
        await replaceFile(b, CONFIG, Buffer.from('version 2 config, longer'));
        expect((await b.load(CONFIG)).toString()).toBe('version 2 config, longer');
        expect(await b.stat(CONFIG)).toEqual({ name: '', size: 24 });
        expect([...(await listed(b, 'config'))]).toEqual([['', 24]]);
        expect(await b.exists()).toBe(true);
        expect((await b.load(other)).toString()).toBe('a snapshot');
        // Replacing with the same content again (a retried upgrade) is fine too.
        await replaceFile(b, CONFIG, Buffer.from('version 2 config, longer'));
        expect((await b.load(CONFIG)).toString()).toBe('version 2 config, longer');
      }),
    );

    it(
      'loads byte ranges exactly and refuses ranges past the end with INTEGRITY',
      withBackend(async (b) => {
        await b.create();
        const size = 100_000;
        const data = randomBytes(size);
        const h: Handle = { type: 'data', name: randomName() };
        await b.save(h, data);
        const ranges: [number, number | undefined][] = [
          [0, undefined],
          [0, size],
          [0, 1],
          [10, 20],
          [size - 1, 1],
          [size - 10, undefined],
          [0, 0],
          [size, 0],
          [size, undefined],
        ];
        for (let i = 0; i < 20; i++) {
          const offset = randomInt(size + 1);
          ranges.push([offset, randomInt(size - offset + 1)]);
        }
        for (const [offset, length] of ranges) {
          const got = await b.load(h, offset, length);
          expect(got.equals(data.subarray(offset, length === undefined ? size : offset + length)), `offset ${offset}, length ${length}`).toBe(true);
        }
        for (const [offset, length] of [
          [size - 10, 11],
          [0, size + 1],
          [size, 1],
          [size + 1, undefined],
          [2 * size, 1],
        ]) {
          expect(await code(b.load(h, offset, length)), `offset ${offset}, length ${length}`).toBe('INTEGRITY');
        }
      }),
    );

    it(
      'reports missing files as NOT_FOUND; remove is idempotent',
      withBackend(async (b) => {
        await b.create();
        for (const t of FILE_TYPES) {
          const h: Handle = { type: t, name: t === 'config' ? '' : randomName() };
          expect(await code(b.load(h)), t).toBe('NOT_FOUND');
          expect(await code(b.load(h, 0, 1)), t).toBe('NOT_FOUND');
          expect(await code(b.stat(h)), t).toBe('NOT_FOUND');
          await b.remove(h);
          await b.save(h, Buffer.from('x'));
          await b.remove(h);
          await b.remove(h);
          expect(await code(b.load(h)), t).toBe('NOT_FOUND');
          expect(await code(b.stat(h)), t).toBe('NOT_FOUND');
          expect((await listed(b, t)).size, t).toBe(0);
        }
      }),
    );

    it(
      'never overwrites a file with other content (BAD_INPUT); saving the same content again leaves it intact',
      withBackend(async (b) => {
        await b.create();
        for (const h of [CONFIG, { type: 'data', name: randomName() } as Handle, { type: 'lock', name: randomName() } as Handle]) {
          const first = randomBytes(3000);
          await b.save(h, first);
          expect(await code(b.save(h, randomBytes(3000))), h.type).toBe('BAD_INPUT');
          expect(await code(b.save(h, Buffer.from('short'))), h.type).toBe('BAD_INPUT');
          // The contract lets a retried save of identical content succeed or fail with BAD_INPUT.
          expect([undefined, 'BAD_INPUT'], h.type).toContain(await code(b.save(h, Buffer.from(first))));
          expect((await b.load(h)).equals(first), h.type).toBe(true);
          expect([...(await listed(b, h.type))], h.type).toEqual([[h.name, 3000]]);
        }
      }),
    );

    it(
      'replaces a file that is not what its name says (the leftover of a save that failed half way) with content that is, from memory and from a local file; other content stays refused',
      withBackend(async (b) => {
        await b.create();
        for (const type of ['data', 'index', 'lock'] as const) {
          for (const leftover of [Buffer.alloc(0), randomBytes(1000), randomBytes(5000)]) {
            const data = randomBytes(5000);
            const h: Handle = { type, name: digest(data) };
            // What a server keeps of an upload cut short: nothing, a part, or as many other bytes.
            await b.save(h, leftover);
            await b.save(h, data);
            expect(digest(await b.load(h)), type).toBe(h.name);
            expect([...(await listed(b, type))].filter(([name]) => name === h.name), type).toEqual([[h.name, data.length]]);
            // Now that the file is right, nothing else goes under its name.
            expect(await code(b.save(h, randomBytes(5000))), type).toBe('BAD_INPUT');
          }
        }
        const data = randomBytes(2 * 1024 * 1024);
        const h: Handle = { type: 'data', name: digest(data) };
        await b.save(h, data.subarray(0, 1024 * 1024));
        const folder = b.stagingFolder ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-staging-')));
        const file = path.join(folder, `.cairn-tmp-test-${process.pid}-00-0-leftover`);
        await fs.writeFile(file, data);
        await saveLocalFile(b, h, file);
        expect(digest(await b.load(h))).toBe(h.name);
        expect(await fs.stat(file).catch(() => null)).toBeNull();
        if (!b.stagingFolder) await fs.rm(folder, { recursive: true });
      }),
    );

    it(
      'takes an empty config (what an init that failed on a full disk may leave) for no repository, which create and a save of the config then make',
      withBackend(async (b) => {
        await b.create();
        await b.save(CONFIG, Buffer.alloc(0));
        expect(await b.exists()).toBe(false);
        await b.create();
        const config = randomBytes(200);
        await b.save(CONFIG, config);
        expect(await b.exists()).toBe(true);
        expect((await b.load(CONFIG)).equals(config)).toBe(true);
        expect(await code(b.create())).toBe('REPO_EXISTS');
        expect(await code(b.save(CONFIG, randomBytes(200)))).toBe('BAD_INPUT');
      }),
    );

    it(
      'saves 50 files concurrently',
      withBackend(async (b) => {
        await b.create();
        const files = Array.from({ length: 50 }, (_, i) => ({
          h: { type: i % 5 === 0 ? 'index' : 'data', name: randomName() } as Handle,
          data: randomBytes(randomInt(1, 200_000)),
        }));
        await Promise.all(files.map((f) => b.save(f.h, f.data)));
        for (const t of ['data', 'index'] as const) {
          const want = files.filter((f) => f.h.type === t).map((f) => [f.h.name, f.data.length] as const);
          expect(new Map([...(await listed(b, t))].sort())).toEqual(new Map(want.sort()));
        }
        const loaded = await Promise.all(files.map((f) => b.load(f.h)));
        files.forEach((f, i) => expect(loaded[i].equals(f.data), f.h.name).toBe(true));
      }),
    );

    it(
      'never lists a file that is still being saved',
      withBackend(async (b) => {
        await b.create();
        const size = 2 * 1024 * 1024 + 3;
        let saving = true;
        const saves = Promise.all(Array.from({ length: 8 }, () => b.save({ type: 'snapshot', name: randomName() }, randomBytes(size)))).finally(() => {
          saving = false;
        });
        const seen = new Set<number>();
        while (saving) for (const s of (await listed(b, 'snapshot')).values()) seen.add(s);
        await saves;
        for (const s of (await listed(b, 'snapshot')).values()) seen.add(s);
        expect([...seen]).toEqual([size]);
      }),
    );

    it(
      'loads ranges into a caller\'s buffer (loadRange: natively or through load)',
      withBackend(async (b) => {
        await b.create();
        const data = randomBytes(100_000);
        const h: Handle = { type: 'data', name: digest(data) };
        await b.save(h, data);
        const into = Buffer.alloc(200_000);
        const got = await loadRange(b, h, 1000, 50_000, into);
        expect(got.equals(data.subarray(1000, 51_000))).toBe(true);
        if (b.loadInto) expect(got.buffer).toBe(into.buffer);
        expect(await code(loadRange(b, h, 60_000, 50_000, into))).toBe('INTEGRITY');
      }),
    );

    it(
      'saves local files (saveLocalFile: natively or through save): the file is taken, staged files are never listed, a retry succeeds, other content is refused',
      withBackend(async (b) => {
        await b.create();
        const folder = b.stagingFolder ?? (await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-staging-')));
        const stage = async (data: Buffer, n: number): Promise<string> => {
          const file = path.join(folder, `.cairn-tmp-test-${process.pid}-00-0-${n}`);
          await fs.writeFile(file, data);
          return file;
        };
        const data = randomBytes(3 * 1024 * 1024 + 7);
        const h: Handle = { type: 'data', name: digest(data) };
        const first = await stage(data, 0);
        const pending = await stage(randomBytes(10), 1);
        expect((await listed(b, 'data')).size).toBe(0);
        await saveLocalFile(b, h, first);
        expect(await fs.stat(first).catch(() => null)).toBeNull();
        expect(digest(await b.load(h))).toBe(h.name);
        expect([...(await listed(b, 'data'))]).toEqual([[h.name, data.length]]);
        await saveLocalFile(b, h, await stage(data, 2));
        expect(await code(saveLocalFile(b, h, await stage(randomBytes(100), 3)))).toBe('BAD_INPUT');
        expect(digest(await b.load(h))).toBe(h.name);
        await fs.rm(pending);
        await Promise.all((await fs.readdir(folder)).filter((n) => n.startsWith('.cairn-tmp-test-')).map((n) => fs.rm(path.join(folder, n))));
        if (!b.stagingFolder) await fs.rm(folder, { recursive: true });
      }),
    );

    it(
      'honours an aborted signal: save rejects with INTERRUPTED and stores nothing; load and list reject too',
      withBackend(async (b) => {
        await b.create();
        const ac = new AbortController();
        ac.abort();
        const h: Handle = { type: 'index', name: randomName() };
        expect(await code(b.save(h, randomBytes(1000), ac.signal))).toBe('INTERRUPTED');
        expect((await listed(b, 'index')).size).toBe(0);
        expect(await code(b.stat(h))).toBe('NOT_FOUND');
        await b.save(h, randomBytes(1000));
        expect(await code(b.load(h, 0, undefined, ac.signal))).toBe('INTERRUPTED');
        expect(await code(listed(b, 'index', ac.signal))).toBe('INTERRUPTED');
      }),
    );
  });
}
