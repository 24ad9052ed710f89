import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CairnError } from '../errors.js';
import { checkKey, type ObjectStore, type StoredObject } from './store.js';

/** Temporary files are named so that no listing, retention rule or mirror ever mistakes them for content. */
const TEMP = /^\.cairn-tmp-[0-9a-f]{16}-/;

/** A folder seen as an object store: keys are paths below the root; writes go to a temporary name and are renamed. */
export class FolderStore implements ObjectStore {
  readonly location: string;
  readonly #root: string;

  constructor(root: string) {
    this.#root = path.resolve(root);
    this.location = this.#root;
  }

  #path(key: string): string {
    checkKey(key);
    return path.join(this.#root, key);
  }

  async put(key: string, body: Readable | Buffer, signal?: AbortSignal): Promise<number> {
    const file = this.#path(key);
    const dir = path.dirname(file);
    await this.#mkdir(dir);
    const tmp = path.join(dir, `.cairn-tmp-${randomBytes(8).toString('hex')}-${path.basename(file)}`);
    let bytes = 0;
    try {
      const out = createWriteStream(tmp, { flags: 'wx' });
      const counted = (Buffer.isBuffer(body) ? Readable.from([body]) : body).on('data', (d: Buffer) => {
        bytes += d.length;
      });
      await pipeline(counted, out, { signal });
      await syncFile(tmp);
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    return bytes;
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await fs.readFile(this.#path(key));
    } catch (err) {
      if (errno(err) === 'ENOENT') return undefined;
      throw this.#failure(err, key);
    }
  }

  async list(prefix = ''): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await fs.readdir(path.join(this.#root, rel), { withFileTypes: true });
      } catch (err) {
        if (errno(err) === 'ENOENT') return;
        throw this.#failure(err, rel);
      }
      if (entries.length === 0 && rel !== '' && `${rel}/`.startsWith(prefix)) out.push({ key: `${rel}/`, size: 0 });
      for (const e of entries) {
        if (TEMP.test(e.name)) continue;
        const key = rel === '' ? e.name : `${rel}/${e.name}`;
        if (!key.startsWith(prefix) && !prefix.startsWith(`${key}/`)) continue;
        if (e.isDirectory()) await walk(key);
        else if (e.isFile()) out.push({ key, size: (await fs.stat(path.join(this.#root, key))).size });
      }
    };
    await walk('');
    return out;
  }

  async delete(key: string): Promise<void> {
    const p = this.#path(key);
    if (key.endsWith('/')) {
      await fs.rmdir(p).catch((err: unknown) => {
        if (errno(err) !== 'ENOENT' && errno(err) !== 'ENOTEMPTY') throw err;
      });
    } else {
      await fs.rm(p, { force: true });
    }
    await this.#pruneParents(path.dirname(p.replace(/\/$/, '')));
  }

  async copy(from: string, to: string): Promise<void> {
    const dst = this.#path(to);
    await this.#mkdir(path.dirname(dst));
    const tmp = path.join(path.dirname(dst), `.cairn-tmp-${randomBytes(8).toString('hex')}-${path.basename(dst)}`);
    try {
      await fs.copyFile(this.#path(from), tmp, fs.constants.COPYFILE_FICLONE);
      await fs.rename(tmp, dst);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw this.#failure(err, from);
    }
  }

  async move(from: string, to: string): Promise<void> {
    const src = this.#path(from);
    const dst = this.#path(to);
    await this.#mkdir(path.dirname(dst));
    try {
      await fs.rename(src, dst);
    } catch (err) {
      throw this.#failure(err, from);
    }
    await this.#pruneParents(path.dirname(src));
  }

  async putFolder(key: string): Promise<void> {
    await this.#mkdir(this.#path(key));
  }

  close(): void {}

  async #mkdir(dir: string): Promise<void> {
    try {
      await fs.mkdir(dir, { recursive: true });
    } catch (err) {
      throw this.#failure(err, path.relative(this.#root, dir));
    }
  }

  /** Removes folders left empty below the root, so the folder looks as a listing of the keys says it should. */
  async #pruneParents(dir: string): Promise<void> {
    while (dir.length > this.#root.length && dir.startsWith(this.#root)) {
      try {
        await fs.rmdir(dir);
      } catch {
        return;
      }
      dir = path.dirname(dir);
    }
  }

  #failure(err: unknown, key: string): Error {
    const code = errno(err);
    if (code === 'EACCES' || code === 'EROFS' || code === 'ENOTDIR' || code === 'ENOSPC' || code === 'EIO') {
      return new CairnError('BACKEND_UNAVAILABLE', `cannot use ${key === '' ? 'the folder' : JSON.stringify(key)} in ${this.#root}: ${code}`, { cause: err });
    }
    return err as Error;
  }
}

async function syncFile(file: string): Promise<void> {
  const h = await fs.open(file, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
