import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Backend, FileType, Handle } from './backend.js';
import { FILE_TYPES } from './backend.js';

/** A backend under test and how to throw it away. */
export interface BackendFixture {
  backend: Backend;
  cleanup: () => Promise<void>;
}

function randomName(): string {
  return randomBytes(32).toString('hex');
}

async function listed(b: Backend, t: FileType): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for await (const f of b.list(t)) m.set(f.name, f.size);
  return m;
}

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code ?? 'NO_CODE';
  }
}

/**
 * The contract of `Backend` (backend.ts) as tests. Every backend runs this suite unchanged; a new
 * backend is done when it passes. `make` returns a fresh, empty location each time.
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
      'creates a repository once; exists() follows the config file',
      withBackend(async (b) => {
        expect(await b.exists()).toBe(false);
        await b.create();
        expect(await b.exists()).toBe(false);
        await b.save({ type: 'config', name: '' }, Buffer.from('config bytes'));
        expect(await b.exists()).toBe(true);
        expect(await code(b.create())).toBe('REPO_EXISTS');
        expect((await b.load({ type: 'config', name: '' })).toString()).toBe('config bytes');
        expect((await b.stat({ type: 'config', name: '' })).size).toBe(12);
      }),
    );

    it(
      'round trips files of every type and size, and lists exactly what was saved',
      withBackend(async (b) => {
        await b.create();
        const sizes = [0, 1, 1024 * 1024 + 1, 20 * 1024 * 1024];
        const saved = new Map<FileType, Map<string, Buffer>>();
        for (const t of FILE_TYPES.filter((t) => t !== 'config')) {
          const m = new Map<string, Buffer>();
          for (const size of t === 'data' ? sizes : [0, 1, 1000]) {
            const data = randomBytes(size);
            const h: Handle = { type: t, name: randomName() };
            await b.save(h, data);
            m.set(h.name, data);
          }
          saved.set(t, m);
        }
        for (const [t, files] of saved) {
          const l = await listed(b, t);
          expect([...l.keys()].sort()).toEqual([...files.keys()].sort());
          for (const [n, data] of files) {
            expect(l.get(n)).toBe(data.length);
            expect((await b.load({ type: t, name: n })).equals(data)).toBe(true);
            expect((await b.stat({ type: t, name: n })).size).toBe(data.length);
          }
        }
      }),
    );

    it(
      'loads ranges exactly and refuses ranges past the end',
      withBackend(async (b) => {
        await b.create();
        const data = randomBytes(100_000);
        const h: Handle = { type: 'data', name: randomName() };
        await b.save(h, data);
        expect((await b.load(h, 10, 20)).equals(data.subarray(10, 30))).toBe(true);
        expect((await b.load(h, 99_990)).equals(data.subarray(99_990))).toBe(true);
        expect((await b.load(h, 100_000, 0)).length).toBe(0);
        expect(await code(b.load(h, 99_990, 11))).toBe('INTEGRITY');
        expect(await code(b.load(h, 200_000, 1))).toBe('INTEGRITY');
      }),
    );

    it(
      'reports missing files as NOT_FOUND; remove is idempotent',
      withBackend(async (b) => {
        await b.create();
        const h: Handle = { type: 'snapshot', name: randomName() };
        expect(await code(b.load(h))).toBe('NOT_FOUND');
        expect(await code(b.stat(h))).toBe('NOT_FOUND');
        await b.save(h, Buffer.from('x'));
        await b.remove(h);
        await b.remove(h);
        expect(await code(b.load(h))).toBe('NOT_FOUND');
        expect((await listed(b, 'snapshot')).size).toBe(0);
      }),
    );

    it(
      'accepts concurrent saves and a repeated save of the same content',
      withBackend(async (b) => {
        await b.create();
        const files = Array.from({ length: 50 }, () => ({ name: randomName(), data: randomBytes(5000) }));
        await Promise.all(files.map((f) => b.save({ type: 'data', name: f.name }, f.data)));
        expect((await listed(b, 'data')).size).toBe(50);
        await b.save({ type: 'data', name: files[0].name }, files[0].data);
        expect((await b.load({ type: 'data', name: files[0].name })).equals(files[0].data)).toBe(true);
      }),
    );

    it(
      'honours an aborted signal: nothing is saved',
      withBackend(async (b) => {
        await b.create();
        const ac = new AbortController();
        ac.abort();
        const h: Handle = { type: 'index', name: randomName() };
        expect(await code(b.save(h, randomBytes(1000), ac.signal))).toBeDefined();
        expect((await listed(b, 'index')).size).toBe(0);
      }),
    );

    it(
      'lists nothing for empty types',
      withBackend(async (b) => {
        await b.create();
        for (const t of FILE_TYPES.filter((t) => t !== 'config')) expect((await listed(b, t)).size).toBe(0);
      }),
    );
  });
}
