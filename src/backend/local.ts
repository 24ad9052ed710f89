import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CairnError } from '../errors.js';
import type { Backend, FileInfo, FileType, Handle } from './backend.js';

const DIRS: Record<Exclude<FileType, 'config'>, string> = {
  key: 'keys',
  lock: 'locks',
  snapshot: 'snapshots',
  index: 'index',
  data: 'data',
};
const NAME = /^[0-9a-f]{64}$/;

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

function wrap(err: unknown, what: string): CairnError {
  if (err instanceof CairnError) return err;
  const code = errno(err);
  if (code === 'ENOENT') return new CairnError('NOT_FOUND', `${what}: no such file`);
  if (code === 'ENOSPC') return new CairnError('BACKEND_UNAVAILABLE', `${what}: no space left on device`);
  if (code === 'EACCES' || code === 'EPERM') return new CairnError('BACKEND_UNAVAILABLE', `${what}: permission denied`);
  if (code === 'EROFS') return new CairnError('BACKEND_UNAVAILABLE', `${what}: read-only file system`);
  return new CairnError('BACKEND_UNAVAILABLE', `${what}: ${(err as Error).message}`);
}

/**
 * A repository in a local folder with restic's default layout: `config`, `keys/`, `locks/`,
 * `snapshots/`, `index/` and `data/xx/<id>`. Files are written to a temporary name, fsynced and
 * renamed, so readers never see half a file; they are made read-only (0400) as restic makes them.
 */
export class LocalBackend implements Backend {
  readonly location: string;
  readonly #root: string;

  constructor(root: string) {
    this.#root = path.resolve(root);
    this.location = this.#root;
  }

  filePath(h: Handle): string {
    if (h.type === 'config') return path.join(this.#root, 'config');
    if (!NAME.test(h.name)) throw new CairnError('BAD_INPUT', `invalid ${h.type} file name ${JSON.stringify(h.name)}`);
    if (h.type === 'data') return path.join(this.#root, 'data', h.name.slice(0, 2), h.name);
    return path.join(this.#root, DIRS[h.type], h.name);
  }

  async create(): Promise<void> {
    if (await this.exists()) throw new CairnError('REPO_EXISTS', `a repository already exists at ${this.#root}`);
    try {
      await fs.mkdir(this.#root, { recursive: true, mode: 0o700 });
      for (const d of Object.values(DIRS)) await fs.mkdir(path.join(this.#root, d), { recursive: true, mode: 0o700 });
      await Promise.all(Array.from({ length: 256 }, (_, i) => fs.mkdir(path.join(this.#root, 'data', i.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 })));
    } catch (err) {
      throw wrap(err, `creating repository at ${this.#root}`);
    }
  }

  async save(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw new CairnError('INTERRUPTED', 'save aborted');
    const file = this.filePath(h);
    const dir = path.dirname(file);
    const tmp = path.join(dir, `.tmp-${path.basename(file)}-${randomBytes(6).toString('hex')}`);
    let fh: fs.FileHandle | null = null;
    try {
      try {
        fh = await fs.open(tmp, 'wx', 0o600);
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw err;
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
        fh = await fs.open(tmp, 'wx', 0o600);
      }
      let done = 0;
      while (done < data.length) {
        if (signal?.aborted) throw new CairnError('INTERRUPTED', 'save aborted');
        const { bytesWritten } = await fh.write(data, done, data.length - done);
        done += bytesWritten;
      }
      await fh.sync();
      await fh.chmod(0o400);
      await fh.close();
      fh = null;
      if (h.type !== 'config' && (await exists(file))) {
        // Files are named by their content, so an existing file with the same size is this same file saved by a retry.
        const st = await fs.stat(file);
        if (st.size !== data.length) throw new CairnError('BAD_INPUT', `${h.type} ${h.name} already exists with other content`);
        await fs.rm(tmp, { force: true });
        return;
      }
      await fs.rename(tmp, file);
      await syncDir(dir);
    } catch (err) {
      if (fh) await fh.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw wrap(err, `saving ${h.type} ${h.name || 'config'}`);
    }
  }

  async load(h: Handle, offset = 0, length?: number, signal?: AbortSignal): Promise<Buffer> {
    if (signal?.aborted) throw new CairnError('INTERRUPTED', 'load aborted');
    const file = this.filePath(h);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(file, 'r');
    } catch (err) {
      throw wrap(err, `${h.type} ${h.name || 'config'}`);
    }
    try {
      const size = (await fh.stat()).size;
      const want = length ?? size - offset;
      if (offset < 0 || want < 0 || offset + want > size) {
        throw new CairnError('INTEGRITY', `${h.type} ${h.name || 'config'}: wanted ${want} bytes at offset ${offset}, but the file has ${size} bytes`);
      }
      const buf = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const { bytesRead } = await fh.read(buf, got, want - got, offset + got);
        if (bytesRead === 0) throw new CairnError('INTEGRITY', `${h.type} ${h.name}: file ended early`);
        got += bytesRead;
      }
      return buf;
    } catch (err) {
      throw wrap(err, `${h.type} ${h.name || 'config'}`);
    } finally {
      await fh.close();
    }
  }

  async stat(h: Handle): Promise<FileInfo> {
    try {
      const st = await fs.stat(this.filePath(h));
      return { name: h.name, size: st.size };
    } catch (err) {
      throw wrap(err, `${h.type} ${h.name || 'config'}`);
    }
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    if (type === 'config') {
      if (await this.exists()) yield { name: '', size: (await fs.stat(path.join(this.#root, 'config'))).size };
      return;
    }
    const base = path.join(this.#root, DIRS[type]);
    const dirs = type === 'data' ? [base, ...(await readdirOrEmpty(base)).filter((d) => /^[0-9a-f]{2}$/.test(d)).map((d) => path.join(base, d))] : [base];
    for (const dir of dirs) {
      for (const name of await readdirOrEmpty(dir)) {
        if (!NAME.test(name)) continue;
        try {
          const st = await fs.stat(path.join(dir, name));
          if (st.isFile()) yield { name, size: st.size };
        } catch (err) {
          if (errno(err) !== 'ENOENT') throw wrap(err, `listing ${type}`);
        }
      }
    }
  }

  async remove(h: Handle): Promise<void> {
    try {
      await fs.rm(this.filePath(h), { force: true });
    } catch (err) {
      throw wrap(err, `removing ${h.type} ${h.name}`);
    }
  }

  async exists(): Promise<boolean> {
    return exists(path.join(this.#root, 'config'));
  }

  async close(): Promise<void> {}
}

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await fs.readdir(dir);
  } catch (err) {
    if (errno(err) === 'ENOENT') return [];
    throw wrap(err, `listing ${dir}`);
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
