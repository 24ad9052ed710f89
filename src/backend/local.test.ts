import { execFile, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FILE_TYPES, type Handle } from './backend.js';
import { runBackendConformance } from './conformance.js';
import { handlePath, LocalBackend } from './local.js';

const run = promisify(execFile);
const resticFound = spawnSync('restic', ['version'], { stdio: 'ignore' }).status === 0;

const temps: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-local-'));
  temps.push(dir);
  return dir;
}

afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(temps.splice(0).map((d) => fs.rm(d, { recursive: true, force: true })));
});

/** Every entry under `root` as "relative path, mode[, size]", sorted: a fingerprint of a layout. */
async function tree(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(root, { recursive: true })) {
    const st = await fs.lstat(path.join(root, e));
    out.push(`${e} ${(st.mode & 0o7777).toString(8)}${st.isFile() ? ` ${st.size}` : ''}`);
  }
  return out.sort();
}

async function tempFiles(root: string): Promise<string[]> {
  return (await fs.readdir(root, { recursive: true })).filter((e) => path.basename(e).includes('-tmp-'));
}

async function errorOf(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a rejection');
}

function id(): string {
  return randomBytes(32).toString('hex');
}

/** A backend in a fresh folder that create() has been run on. */
async function created(): Promise<{ dir: string; b: LocalBackend }> {
  const dir = path.join(await tempDir(), 'repo');
  const b = new LocalBackend(dir);
  await b.create();
  return { dir, b };
}

/** Makes every write to a temporary file go through `write` instead. */
function interceptTempWrites(write: (real: () => ReturnType<fs.FileHandle['write']>) => ReturnType<fs.FileHandle['write']>): void {
  const realOpen = fs.open;
  vi.spyOn(fs, 'open').mockImplementation(async (p, flags, mode) => {
    const fh = await realOpen(p, flags, mode);
    if (String(p).includes('-tmp-')) {
      const realWrite = fh.write.bind(fh) as (...args: unknown[]) => ReturnType<fs.FileHandle['write']>;
      fh.write = ((...args: unknown[]) => write(() => realWrite(...args))) as fs.FileHandle['write'];
    }
    return fh;
  });
}

function errnoError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${syscall} failed`), { code, syscall });
}

runBackendConformance('local', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-conformance-'));
  return { backend: new LocalBackend(path.join(dir, 'repo')), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

describe('local backend', () => {
  it("lays files out as restic does: data/xx/<id>, 256 data folders (0700), read-only files (0400)", async () => {
    const { dir, b } = await created();
    const data = await fs.readdir(path.join(dir, 'data'));
    expect(data.length).toBe(256);
    expect(data).toContain('00');
    expect(data).toContain('ff');
    const names: Record<string, Handle> = {
      config: { type: 'config', name: '' },
      [`data/ab/${'ab'.repeat(32)}`]: { type: 'data', name: 'ab'.repeat(32) },
      [`keys/${'cd'.repeat(32)}`]: { type: 'key', name: 'cd'.repeat(32) },
      [`locks/${'01'.repeat(32)}`]: { type: 'lock', name: '01'.repeat(32) },
      [`snapshots/${'23'.repeat(32)}`]: { type: 'snapshot', name: '23'.repeat(32) },
      [`index/${'45'.repeat(32)}`]: { type: 'index', name: '45'.repeat(32) },
    };
    for (const [rel, h] of Object.entries(names)) {
      await b.save(h, Buffer.from(rel));
      expect(handlePath(dir, h)).toBe(path.join(dir, rel));
      const st = await fs.stat(path.join(dir, rel));
      expect(st.mode & 0o777, rel).toBe(0o400);
    }
    for (const d of ['keys', 'locks', 'snapshots', 'index', 'data', 'data/7f']) expect((await fs.stat(path.join(dir, d))).mode & 0o777, d).toBe(0o700);
  });

  it("follows restic's group-accessible repositories: a group-readable config makes new files 0440", async () => {
    const { dir, b } = await created();
    await b.save({ type: 'config', name: '' }, Buffer.from('c'));
    await fs.chmod(path.join(dir, 'config'), 0o440);
    const h: Handle = { type: 'snapshot', name: id() };
    await new LocalBackend(dir).save(h, Buffer.from('s'));
    expect((await fs.stat(handlePath(dir, h))).mode & 0o777).toBe(0o440);
  });

  it('creates into an existing empty folder, refuses a file, and refuses a folder that holds a config', async () => {
    const dir = await tempDir();
    await new LocalBackend(dir).create();
    expect((await fs.readdir(dir)).sort()).toEqual(['data', 'index', 'keys', 'locks', 'snapshots']);
    const file = path.join(dir, 'file');
    await fs.writeFile(file, 'x');
    expect(await errorOf(new LocalBackend(file).create())).toMatchObject({ code: 'BACKEND_UNAVAILABLE', message: expect.stringMatching(/is a file/) });
    await fs.writeFile(path.join(dir, 'config'), 'c');
    expect(await errorOf(new LocalBackend(dir).create())).toMatchObject({ code: 'REPO_EXISTS' });
  });

  it('creates a missing data/xx folder on save, and accepts files directly under data/', async () => {
    const { dir, b } = await created();
    await fs.rm(path.join(dir, 'data', 'ef'), { recursive: true });
    await fs.rm(path.join(dir, 'locks'), { recursive: true });
    const saved = 'ef'.repeat(32);
    await b.save({ type: 'data', name: saved }, Buffer.from('packed'));
    await b.save({ type: 'lock', name: id() }, Buffer.from('lock'));
    expect(await fs.readFile(path.join(dir, 'data', 'ef', saved), 'utf8')).toBe('packed');

    const flat = '01'.repeat(32);
    await fs.writeFile(path.join(dir, 'data', flat), 'flat');
    // Present in both places: listed once.
    await fs.writeFile(path.join(dir, 'data', saved), 'packed');
    await fs.writeFile(path.join(dir, 'data', 'ef', `.${saved}-tmp-0123`), 'being written');
    await fs.writeFile(path.join(dir, 'data', 'ef', 'README'), 'stray');
    await fs.writeFile(path.join(dir, 'data', 'ef', 'EF'.repeat(32)), 'not lowercase');
    const names = new Map<string, number>();
    for await (const f of b.list('data')) names.set(f.name, f.size);
    expect(new Map([...names].sort())).toEqual(new Map([[flat, 4], [saved, 6]]));

    const h: Handle = { type: 'data', name: flat };
    expect((await b.load(h, 1, 2)).toString()).toBe('la');
    expect(await b.stat(h)).toEqual({ name: flat, size: 4 });
    // Readers of the files themselves (workers checking and restoring) find both places too.
    expect(await b.localPath(h)).toBe(path.join(dir, 'data', flat));
    expect(await b.localPath({ type: 'data', name: saved })).toBe(path.join(dir, 'data', 'ef', saved));
    await expect(b.localPath({ type: 'data', name: '02'.repeat(32) })).rejects.toMatchObject({ code: 'NOT_FOUND', message: `data file ${'02'.repeat(32)} in ${dir} does not exist` });
    await b.remove(h);
    await expect(fs.stat(path.join(dir, 'data', flat))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('saves a staged file by renaming it from data/ into data/xx: read-only, into a missing folder too', async () => {
    const { dir, b } = await created();
    expect(b.stagingFolder).toBe(path.join(dir, 'data'));
    await fs.rm(path.join(dir, 'data', 'ef'), { recursive: true });
    const staged = path.join(b.stagingFolder, '.cairn-tmp-h-1-00-0-0');
    await fs.writeFile(staged, 'packed', { mode: 0o600 });
    const { ino } = await fs.stat(staged);
    const name = 'ef'.repeat(32);
    await b.saveFile({ type: 'data', name }, staged);
    const st = await fs.stat(path.join(dir, 'data', 'ef', name));
    expect(st.ino).toBe(ino);
    expect(st.mode & 0o777).toBe(0o400);
    expect(await fs.readdir(path.join(dir, 'data', 'ef'))).toEqual([name]);
    expect((await fs.readdir(path.join(dir, 'data'))).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('does not recreate a repository folder that has gone (an unmounted drive)', async () => {
    const { dir, b } = await created();
    await fs.rm(dir, { recursive: true });
    expect(await errorOf(b.save({ type: 'data', name: id() }, Buffer.from('x')))).toMatchObject({
      code: 'BACKEND_UNAVAILABLE',
      message: expect.stringMatching(/does not exist \(is its drive mounted\?\)/),
    });
    await expect(fs.stat(dir)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await b.exists()).toBe(false);
    for (const t of FILE_TYPES) for await (const f of b.list(t)) throw new Error(`listed ${f.name}`);
  });

  it('leaves no temporary file when the target folder cannot be used', async () => {
    const { dir, b } = await created();
    await fs.rm(path.join(dir, 'index'), { recursive: true });
    await fs.writeFile(path.join(dir, 'index'), 'a file where the folder should be');
    expect(await errorOf(b.save({ type: 'index', name: id() }, Buffer.from('x')))).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect(await tempFiles(dir)).toEqual([]);
  });

  it('maps a full disk to BACKEND_UNAVAILABLE and removes the partial temporary file', async () => {
    const { dir, b } = await created();
    let writes = 0;
    interceptTempWrites(async (real) => {
      if (++writes === 2) throw errnoError('ENOSPC', 'write');
      return real();
    });
    const h: Handle = { type: 'data', name: id() };
    const err = await errorOf(b.save(h, randomBytes(20 * 1024 * 1024)));
    expect(writes).toBe(2);
    expect(err).toMatchObject({ code: 'BACKEND_UNAVAILABLE', message: expect.stringMatching(/^no space left on device while writing data file/) });
    expect(await tempFiles(dir)).toEqual([]);
    await expect(b.stat(h)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('maps a permission error to BACKEND_UNAVAILABLE with advice', async () => {
    const { dir, b } = await created();
    const realOpen = fs.open;
    vi.spyOn(fs, 'open').mockImplementation(async (p, flags, mode) => {
      if (String(p).includes('-tmp-')) throw errnoError('EACCES', 'open');
      return realOpen(p, flags, mode);
    });
    const err = await errorOf(b.save({ type: 'key', name: id() }, Buffer.from('k')));
    expect(err).toMatchObject({ code: 'BACKEND_UNAVAILABLE', message: expect.stringMatching(/^permission denied while writing key file .* owns /) });
    expect(await tempFiles(dir)).toEqual([]);
  });

  it('stops a save aborted half way and leaves nothing behind', async () => {
    const { dir, b } = await created();
    const ac = new AbortController();
    interceptTempWrites(async (real) => {
      const r = await real();
      ac.abort();
      return r;
    });
    const h: Handle = { type: 'data', name: id() };
    expect(await errorOf(b.save(h, randomBytes(20 * 1024 * 1024), ac.signal))).toMatchObject({ code: 'INTERRUPTED' });
    expect(await tempFiles(dir)).toEqual([]);
    await expect(b.stat(h)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('accepts a retried save of identical content', async () => {
    const { b } = await created();
    const h: Handle = { type: 'data', name: id() };
    const data = randomBytes(10_000);
    await b.save(h, data);
    await b.save(h, Buffer.from(data));
    expect((await b.load(h)).equals(data)).toBe(true);
  });

  it('refuses names that are not ids and ranges that are not byte offsets', async () => {
    const { b } = await created();
    for (const h of [
      { type: 'data', name: '../../etc/passwd' },
      { type: 'data', name: 'AB'.repeat(32) },
      { type: 'key', name: 'ab'.repeat(31) },
      { type: 'config', name: 'x' },
      { type: 'other', name: id() },
    ] as Handle[]) {
      expect(await errorOf(b.save(h, Buffer.from('x'))), h.name).toMatchObject({ code: 'BAD_INPUT' });
      expect(await errorOf(b.load(h)), h.name).toMatchObject({ code: 'BAD_INPUT' });
    }
    const h: Handle = { type: 'data', name: id() };
    await b.save(h, Buffer.from('abc'));
    for (const [offset, length] of [[-1, 1], [0, -1], [0.5, 1]]) expect(await errorOf(b.load(h, offset, length))).toMatchObject({ code: 'BAD_INPUT' });
  });
});

describe('restic interoperability', () => {
  it('shares repositories with restic: same layout, files readable both ways', async (ctx) => {
    if (!resticFound) {
      if (process.env.CI === 'true') throw new Error('restic not found on PATH; apt-get install restic');
      ctx.skip('restic not installed; apt-get install restic to run this test');
    }
    const dir = await tempDir();
    const passwordFile = path.join(dir, 'password');
    await fs.writeFile(passwordFile, `pw-${randomBytes(8).toString('hex')}`, { mode: 0o600 });
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RESTIC_')));
    const restic = async (repo: string, ...args: string[]) =>
      (
        await run('restic', ['--no-cache', '--quiet', ...args], {
          env: { ...env, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD_FILE: passwordFile },
        })
      ).stdout;

    const theirs = path.join(dir, 'by-restic');
    await restic(theirs, 'init', '--repository-version', '2');
    const fromRestic = new LocalBackend(theirs);
    expect(await fromRestic.exists()).toBe(true);
    const keys = [];
    for await (const f of fromRestic.list('key')) keys.push(f);
    expect(keys).toHaveLength(1);
    expect(keys[0].size).toBe((await fs.stat(path.join(theirs, 'keys', keys[0].name))).size);
    expect((await fromRestic.load({ type: 'config', name: '' })).equals(await fs.readFile(path.join(theirs, 'config')))).toBe(true);

    const ours = path.join(dir, 'by-cairn');
    const copy = new LocalBackend(ours);
    await copy.create();
    expect(await tree(ours)).toEqual(await tree(theirs).then((t) => t.filter((e) => !/^(config|keys\/)/.test(e))));
    for (const t of FILE_TYPES) {
      for await (const f of fromRestic.list(t)) {
        const h: Handle = { type: t, name: f.name };
        await copy.save(h, await fromRestic.load(h));
      }
    }
    expect(await tree(ours)).toEqual(await tree(theirs));
    expect(JSON.parse(await restic(ours, 'cat', 'config'))).toMatchObject({ version: 2 });
  });
});
