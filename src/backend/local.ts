import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { CairnError, noSpace } from '../errors.js';
import { whyNoFolder } from '../fs/no-folder.js';
import type { Backend, FileInfo, FileType, Handle } from './backend.js';
import { checkAborted, checkRange, FOLDERS, handleKey, ID, label, replacesLeftover, tooShort } from './files.js';

const DATA_PREFIX = /^[0-9a-f]{2}$/;
/** Reads and writes go in pieces of this size, so that an abort takes effect within one piece. */
const PIECE = 8 * 1024 * 1024;
/** Stats in flight at once while listing: enough to hide latency, few enough for libuv's pool. */
const STAT_BATCH = 64;

interface Modes {
  readonly dir: number;
  readonly file: number;
}
const PRIVATE: Modes = { dir: 0o700, file: 0o600 };
/** restic's group-accessible repositories: chosen by giving the group read access to `config`. */
const GROUP: Modes = { dir: 0o770, file: 0o660 };

/** Where `h` lives under `root` in restic's default layout (see `handleKey`); `BAD_INPUT` for a bad name. */
export function handlePath(root: string, h: Handle): string {
  return path.join(root, handleKey(h));
}

/**
 * File systems (statfs f_type) on this machine's disks or memory, where a file renamed into place
 * is in every process's listing as soon as the rename returns: ext2-4, xfs, btrfs, tmpfs, zfs,
 * f2fs, overlayfs, bcachefs. NFS, SMB and FUSE mounts (sshfs, rclone, s3fs) are left out: their
 * listings may lag.
 */
const LISTS_AT_ONCE = new Set([0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x2fc12fc1, 0xf2f52010, 0x794c7630, 0xca451a4e]);

/**
 * A repository in a local folder, laid out and permissioned as restic lays it out, so restic and
 * Cairn can share it. Each save goes to a temporary file in the target folder (named so that it
 * never looks like an id), is fsynced, made read-only and renamed into place; the folder is then
 * fsynced, so a crash leaves either the whole file or none of it.
 */
export class LocalBackend implements Backend {
  readonly location: string;
  readonly local: boolean = true;
  /** data/ itself: on the same file system as data/xx, and restic skips files there that are not ids. */
  readonly stagingFolder: string;
  readonly #root: string;
  #modes?: Promise<Modes>;
  #listsAtOnce?: Promise<boolean>;

  constructor(root: string) {
    this.#root = path.resolve(root);
    this.location = this.#root;
    this.stagingFolder = path.join(this.#root, 'data');
  }

  /** A stored file's path: a data file may also be at data/<id> (see #openExisting). */
  readonly localPath = (h: Handle): Promise<string> =>
    this.#openExisting(h, handlePath(this.#root, h), async (p) => {
      await fs.access(p);
      return p;
    });

  listsAtOnce(): Promise<boolean> {
    this.#listsAtOnce ??= fs.statfs(this.#root).then(
      (s) => LISTS_AT_ONCE.has(s.type),
      () => false,
    );
    return this.#listsAtOnce;
  }

  async create(): Promise<void> {
    const notAFolder = (err: unknown) =>
      new CairnError('BACKEND_UNAVAILABLE', `cannot create a repository at ${this.#root}: it, or a folder it needs, is a file`, { cause: err });
    try {
      // An empty config is what an init that failed may leave: no repository (see exists).
      if ((await fs.lstat(path.join(this.#root, 'config'))).size > 0) throw new CairnError('REPO_EXISTS', `a repository already exists at ${this.#root}`);
    } catch (err) {
      if (err instanceof CairnError) throw err;
      if (errno(err) === 'ENOTDIR') throw notAFolder(err);
      if (errno(err) !== 'ENOENT') throw this.#failure(err, 'creating the repository at', this.#root);
    }
    try {
      await fs.mkdir(this.#root, { recursive: true, mode: PRIVATE.dir });
      const data = path.join(this.#root, 'data');
      await Promise.all(Object.values(FOLDERS).map((f) => fs.mkdir(path.join(this.#root, f), { recursive: true, mode: PRIVATE.dir })));
      await Promise.all(Array.from({ length: 256 }, (_, i) => fs.mkdir(path.join(data, i.toString(16).padStart(2, '0')), { recursive: true, mode: PRIVATE.dir })));
      await syncDir(data);
      await syncDir(this.#root);
      await syncDir(path.dirname(this.#root));
    } catch (err) {
      if (errno(err) === 'EEXIST' || errno(err) === 'ENOTDIR') throw notAFolder(err);
      if (errno(err) === 'ENOENT') throw new CairnError('BACKEND_UNAVAILABLE', `cannot create a repository at ${this.#root}: ${whyNoFolder(this.#root, err)}`, { cause: err });
      throw this.#failure(err, 'creating the repository at', this.#root);
    }
  }

  async save(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    const file = handlePath(this.#root, h);
    const what = label(h);
    checkAborted(signal, `saving ${what}`);
    const dir = path.dirname(file);
    try {
      switch (await compareWithFile(file, data)) {
        case 'same':
          // A retry of a save that did complete: make sure the first attempt's rename is durable.
          await syncDir(dir);
          return;
        case 'different':
          // Damage under a name this content hashes to is replaced (renamed over), as restic does.
          if (!replacesLeftover(h, data, (await fs.stat(file)).size)) throw new CairnError('BAD_INPUT', `${what} already exists in ${this.#root} with other content; it is not overwritten`);
      }
    } catch (err) {
      throw this.#failure(err, 'writing', `${what} in ${this.#root}`);
    }

    await this.#place(file, data, what, signal);
  }

  /** Writes `data` beside `file`, makes it durable and read-only, renames it over `file` and syncs the folder. */
  async #place(file: string, data: Uint8Array, what: string, signal?: AbortSignal): Promise<void> {
    const dir = path.dirname(file);
    const tmp = path.join(dir, `.${path.basename(file)}-tmp-${randomBytes(8).toString('hex')}`);
    let fh: FileHandle | undefined;
    try {
      const modes = await this.#fileModes();
      fh = await this.#openTemp(tmp, modes);
      for (let pos = 0; pos < data.length; ) {
        checkAborted(signal, `saving ${what}`);
        const { bytesWritten } = await fh.write(data, pos, Math.min(PIECE, data.length - pos), pos);
        pos += bytesWritten;
      }
      await ignoring(fh.sync(), 'ENOTSUP');
      // As restic does, so that nothing rewrites a repository file by accident; some file systems (exFAT, some network mounts) refuse chmod.
      await ignoring(fh.chmod(modes.file & ~0o222), 'EPERM', 'ENOTSUP');
      await fh.close();
      fh = undefined;
      checkAborted(signal, `saving ${what}`);
      await fs.rename(tmp, file);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      throw this.#failure(err, 'writing', `${what} in ${this.#root}`);
    }
    try {
      await syncDir(dir);
    } catch (err) {
      throw this.#failure(err, 'writing', `${what} in ${this.#root}`);
    }
  }

  /** A rename over the old file: the folder holds the old file or the new one at every moment. */
  async replace(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    checkAborted(signal, `saving ${label(h)}`);
    await this.#place(handlePath(this.#root, h), data, label(h), signal);
  }

  /** Makes the file durable and read-only, then renames it into place: no byte is copied. */
  async saveFile(h: Handle, src: string, signal?: AbortSignal): Promise<void> {
    const file = handlePath(this.#root, h);
    const what = label(h);
    checkAborted(signal, `saving ${what}`);
    const dir = path.dirname(file);
    try {
      const modes = await this.#fileModes();
      const fh = await fs.open(src, 'r');
      try {
        await ignoring(fh.sync(), 'ENOTSUP', 'EINVAL');
        await ignoring(fh.chmod(modes.file & ~0o222), 'EPERM', 'ENOTSUP');
      } finally {
        await fh.close();
      }
      let present = await isPresent(file);
      if (present) {
        // Rare (a retry, or the same pack written twice): the content decides, as in save.
        const data = await fs.readFile(src);
        if ((await compareWithFile(file, data)) === 'same') await fs.rm(src, { force: true });
        else if (replacesLeftover(h, data, (await fs.stat(file)).size)) present = false;
        else throw new CairnError('BAD_INPUT', `${what} already exists in ${this.#root} with other content; it is not overwritten`);
      }
      if (!present) {
        checkAborted(signal, `saving ${what}`);
        try {
          await fs.rename(src, file);
        } catch (err) {
          if (errno(err) === 'EXDEV') {
            // data/xx lives on another file system (a symlinked folder): copy instead.
            await this.save(h, await fs.readFile(src), signal);
            await fs.rm(src, { force: true });
            return;
          }
          if (errno(err) !== 'ENOENT' || !(await isPresent(src))) throw err;
          await this.#makeFolder(dir, modes);
          await fs.rename(src, file);
        }
      }
      await syncDir(dir);
    } catch (err) {
      throw this.#failure(err, 'writing', `${what} in ${this.#root}`);
    }
  }

  load(h: Handle, offset = 0, length?: number, signal?: AbortSignal): Promise<Buffer> {
    return this.#read(h, offset, length, undefined, signal);
  }

  async loadInto(h: Handle, offset: number, into: Buffer, signal?: AbortSignal): Promise<void> {
    await this.#read(h, offset, into.length, into, signal);
  }

  async #read(h: Handle, offset: number, length: number | undefined, into: Buffer | undefined, signal?: AbortSignal): Promise<Buffer> {
    const file = handlePath(this.#root, h);
    const what = label(h);
    checkRange(h, offset, length);
    checkAborted(signal, `loading ${what}`);
    const fh = await this.#openExisting(h, file, (p) => fs.open(p, 'r'));
    try {
      const size = (await fh.stat()).size;
      const want = length ?? size - offset;
      if (want < 0 || offset + want > size) throw tooShort(h, this.#root, size, offset, length);
      const buf = into ?? Buffer.allocUnsafe(want);
      for (let got = 0; got < want; ) {
        checkAborted(signal, `loading ${what}`);
        const { bytesRead } = await fh.read(buf, got, Math.min(PIECE, want - got), offset + got);
        if (bytesRead === 0) {
          throw new CairnError('INTEGRITY', `${what} in ${this.#root} ended after ${offset + got} bytes while ${offset + want} were expected`);
        }
        got += bytesRead;
      }
      return buf;
    } catch (err) {
      throw this.#failure(err, 'reading', `${what} in ${this.#root}`);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  async stat(h: Handle): Promise<FileInfo> {
    const st = await this.#openExisting(h, handlePath(this.#root, h), (p) => fs.stat(p));
    return { name: h.name, size: st.size };
  }

  async *list(type: FileType, signal?: AbortSignal): AsyncIterable<FileInfo> {
    checkAborted(signal, `listing ${type} files`);
    try {
      if (type === 'config') {
        const size = await this.#configSize();
        if (size !== undefined) yield { name: '', size };
        return;
      }
      const base = path.join(this.#root, FOLDERS[type]);
      if (type !== 'data') {
        yield* statFiles(base, (await readFolder(base)).map((d) => d.name), signal);
        return;
      }
      const top = await readFolder(base);
      for (const d of top) {
        if (DATA_PREFIX.test(d.name) && (d.isDirectory() || d.isSymbolicLink())) {
          const sub = path.join(base, d.name);
          yield* statFiles(sub, (await readFolder(sub)).map((f) => f.name), signal);
        }
      }
      // Files directly under data/ (flat layouts copied by other tools) count too, unless the same id is also in its data/xx folder.
      for await (const f of statFiles(base, top.filter((d) => !d.isDirectory()).map((d) => d.name), signal)) {
        if (!(await isPresent(path.join(base, f.name.slice(0, 2), f.name)))) yield f;
      }
    } catch (err) {
      throw this.#failure(err, 'listing', `${type} files in ${this.#root}`);
    }
  }

  async remove(h: Handle): Promise<void> {
    const file = handlePath(this.#root, h);
    const paths = h.type === 'data' ? [file, flatDataPath(this.#root, h.name)] : [file];
    try {
      for (const p of paths) await ignoring(fs.unlink(p), 'ENOENT');
    } catch (err) {
      throw this.#failure(err, 'removing', `${label(h)} in ${this.#root}`);
    }
  }

  async exists(): Promise<boolean> {
    try {
      return ((await this.#configSize()) ?? 0) > 0;
    } catch (err) {
      throw this.#failure(err, 'reading', `the config file in ${this.#root}`);
    }
  }

  /** Nothing to release: every operation closes its own file handles. */
  async close(): Promise<void> {}

  async #configSize(): Promise<number | undefined> {
    try {
      return (await fs.stat(path.join(this.#root, 'config'))).size;
    } catch (err) {
      if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return undefined;
      throw err;
    }
  }

  /** restic derives the modes of new files and folders from the config file's: see `GROUP`. */
  #fileModes(): Promise<Modes> {
    this.#modes ??= fs.stat(path.join(this.#root, 'config')).then(
      (st) => (st.mode & 0o040 ? GROUP : PRIVATE),
      () => PRIVATE,
    );
    return this.#modes;
  }

  /** Creates the temporary file, and its folder when missing (other tools do not always keep empty data/xx folders). */
  async #openTemp(tmp: string, modes: Modes): Promise<FileHandle> {
    try {
      return await fs.open(tmp, 'wx', modes.file);
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
    }
    await this.#makeFolder(path.dirname(tmp), modes);
    return fs.open(tmp, 'wx', modes.file);
  }

  /** Creates a missing folder inside the repository (and makes that durable). */
  async #makeFolder(dir: string, modes: Modes): Promise<void> {
    // Never recreate the repository folder itself: when it is gone, a drive is probably not mounted and writing to the mount point would hide that.
    try {
      await fs.stat(this.#root);
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw err;
      throw new CairnError('BACKEND_UNAVAILABLE', `the repository folder ${this.#root} does not exist (is its drive mounted?)`, { cause: err });
    }
    await fs.mkdir(dir, { recursive: true, mode: modes.dir });
    await syncDir(path.dirname(dir));
  }

  /** Runs `op` on the file's path, falling back for data files to data/<id>; `NOT_FOUND` when neither exists. */
  async #openExisting<T>(h: Handle, file: string, op: (p: string) => Promise<T>): Promise<T> {
    const where = `${label(h)} in ${this.#root}`;
    try {
      return await op(file);
    } catch (err) {
      if (errno(err) !== 'ENOENT') throw this.#failure(err, 'reading', where);
    }
    if (h.type === 'data') {
      try {
        return await op(flatDataPath(this.#root, h.name));
      } catch (err) {
        if (errno(err) !== 'ENOENT') throw this.#failure(err, 'reading', where);
      }
    }
    throw new CairnError('NOT_FOUND', `${where} does not exist`);
  }

  #failure(err: unknown, doing: string, where: string): CairnError {
    if (err instanceof CairnError) return err;
    const cause = { cause: err };
    const full = noSpace(err);
    if (full) return new CairnError('BACKEND_UNAVAILABLE', `${full} while ${doing} ${where}; free some space and run the command again`, cause);
    switch (errno(err)) {
      case 'EACCES':
      case 'EPERM':
        return new CairnError('BACKEND_UNAVAILABLE', `permission denied while ${doing} ${where}; check that the user running cairn owns ${this.#root} and can write to it`, cause);
      case 'EROFS':
        return new CairnError('BACKEND_UNAVAILABLE', `the file system is read-only while ${doing} ${where}`, cause);
      default:
        return new CairnError('BACKEND_UNAVAILABLE', `${doing} ${where} failed: ${(err as Error).message}`, cause);
    }
  }
}

function flatDataPath(root: string, name: string): string {
  return path.join(root, 'data', name);
}

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function ignoring(p: Promise<unknown>, ...codes: string[]): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!codes.includes(errno(err) ?? '')) throw err;
  }
}

async function isPresent(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch (err) {
    if (errno(err) === 'ENOENT') return false;
    throw err;
  }
}

/** Entries of a folder; a folder that is missing or is not a folder has none, as restic treats it. */
async function readFolder(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR') return [];
    throw err;
  }
}

/** Sizes of the regular files among `names` that are ids; temporary files and strays are skipped. */
async function* statFiles(dir: string, names: string[], signal: AbortSignal | undefined): AsyncGenerator<FileInfo> {
  const ids = names.filter((n) => ID.test(n));
  for (let i = 0; i < ids.length; i += STAT_BATCH) {
    checkAborted(signal, 'listing');
    const batch = ids.slice(i, i + STAT_BATCH);
    const stats = await Promise.all(
      batch.map((n) =>
        fs.stat(path.join(dir, n)).catch((err: unknown) => {
          // Removed between readdir and stat.
          if (errno(err) === 'ENOENT') return undefined;
          throw err;
        }),
      ),
    );
    for (let j = 0; j < batch.length; j++) {
      const st = stats[j];
      if (st?.isFile()) yield { name: batch[j], size: st.size };
    }
  }
}

/** Whether `file` holds exactly `data`, is absent, or holds something else. */
async function compareWithFile(file: string, data: Uint8Array): Promise<'absent' | 'same' | 'different'> {
  let fh: FileHandle;
  try {
    fh = await fs.open(file, 'r');
  } catch (err) {
    if (errno(err) === 'ENOENT') return 'absent';
    throw err;
  }
  try {
    if ((await fh.stat()).size !== data.length) return 'different';
    const buf = Buffer.allocUnsafe(Math.min(PIECE, data.length));
    for (let pos = 0; pos < data.length; ) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, data.length - pos), pos);
      if (bytesRead === 0 || !buf.subarray(0, bytesRead).equals(data.subarray(pos, pos + bytesRead))) return 'different';
      pos += bytesRead;
    }
    return 'same';
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** Makes a folder's entries durable; some file systems cannot fsync folders, which restic tolerates too. */
async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await ignoring(fh.sync(), 'ENOTSUP', 'EINVAL');
  } finally {
    await fh.close();
  }
}
