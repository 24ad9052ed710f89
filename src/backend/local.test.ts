import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackendConformance } from './conformance.js';
import { LocalBackend } from './local.js';
import { openBackend } from './location.js';

async function tempRoot(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'cairn-local-'));
}

runBackendConformance('local', async () => {
  const dir = await tempRoot();
  return { backend: new LocalBackend(path.join(dir, 'repo')), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

describe('local backend specifics', () => {
  it("uses restic's layout: data/xx/<id>, 256 data folders, read-only files", async () => {
    const dir = await tempRoot();
    const b = new LocalBackend(dir);
    await b.create();
    expect((await fs.readdir(path.join(dir, 'data'))).length).toBe(256);
    const id = 'ab'.repeat(32);
    await b.save({ type: 'data', name: id }, Buffer.from('pack'));
    const st = await fs.stat(path.join(dir, 'data', 'ab', id));
    expect(st.mode & 0o777).toBe(0o400);
    await b.save({ type: 'key', name: 'cd'.repeat(32) }, Buffer.from('key'));
    expect(await fs.readdir(path.join(dir, 'keys'))).toEqual(['cd'.repeat(32)]);
  });

  it('creates a missing data/xx folder and lists files placed directly under data/', async () => {
    const dir = await tempRoot();
    const b = new LocalBackend(dir);
    await b.create();
    await fs.rm(path.join(dir, 'data', 'ef'), { recursive: true });
    await b.save({ type: 'data', name: 'ef'.repeat(32) }, Buffer.from('x'));
    await fs.writeFile(path.join(dir, 'data', '01'.repeat(32)), 'flat');
    await fs.writeFile(path.join(dir, 'data', 'ef', '.tmp-left-behind'), 'ignored');
    const names: string[] = [];
    for await (const f of b.list('data')) names.push(f.name);
    expect(names.sort()).toEqual(['01'.repeat(32), 'ef'.repeat(32)]);
  });

  it('leaves no temporary file when a save fails', async () => {
    const dir = await tempRoot();
    const b = new LocalBackend(dir);
    await b.create();
    await fs.rm(path.join(dir, 'index'), { recursive: true });
    await fs.writeFile(path.join(dir, 'index'), 'a file where the folder should be');
    await expect(b.save({ type: 'index', name: '12'.repeat(32) }, Buffer.from('x'))).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect((await fs.readdir(dir)).filter((f) => f.startsWith('.tmp'))).toEqual([]);
  });

  it('refuses file names that are not ids', async () => {
    const b = new LocalBackend(await tempRoot());
    await expect(b.save({ type: 'data', name: '../../etc/passwd' }, Buffer.from('x'))).rejects.toMatchObject({ code: 'BAD_INPUT' });
  });
});

describe('repository locations', () => {
  it('opens paths and local:, refuses unknown schemes with a clear message', () => {
    expect(openBackend('/srv/repo').location).toBe('/srv/repo');
    expect(openBackend('local:/srv/repo').location).toBe('/srv/repo');
    expect(() => openBackend('ftp://host/x')).toThrow(/unsupported repository location/);
    expect(() => openBackend('s3:http://localhost:9000/bucket')).toThrow(/not available yet/);
    expect(() => openBackend('')).toThrow(/empty repository location/);
  });
});
