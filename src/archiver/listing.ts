import fsSync from 'node:fs';
import type { BigIntStats } from 'node:fs';
import { isUtf8 } from '../fs/goquote.js';
import { joinPath, type FsPath } from '../fs/fspath.js';
import { utf8Compare, type EntryStat } from '../fs/node.js';
import { parseTime, timeIsNs } from '../fs/time.js';

/** An error as it crosses between threads: its message and errno code. */
export interface WireError {
  message: string;
  code?: string;
}

export function errorToWire(err: unknown): WireError {
  const { message, code } = err as NodeJS.ErrnoException;
  return { message, code };
}

export function errorFromWire(e: WireError): Error {
  return Object.assign(new Error(e.message), { code: e.code });
}

/** An entry's lstat, or why it failed. */
export function lstatOrError(p: FsPath): BigIntStats | Error {
  try {
    return fsSync.lstatSync(p, { bigint: true });
  } catch (err) {
    return err as Error;
  }
}

/** The lstat fields a listing carries per entry, in this order. */
const FIELDS = 11;

/**
 * One folder read: its names in byte order and each entry's lstat, packed so that a listing made
 * on another thread crosses over as a few transferable arrays rather than an object per entry.
 */
export interface Listing {
  names: string[];
  /** Per name, its bytes when they are not UTF-8 (else null); null when every name is UTF-8. */
  raws: (Uint8Array | null)[] | null;
  /** FIELDS numbers per entry (see `listDir`); an entry whose lstat failed has zeros. */
  stats: BigInt64Array;
  /** Per entry, why its lstat failed (else null); null when none failed. */
  errors: (WireError | null)[] | null;
}

/**
 * A folder's names in byte order. Read as text, which costs no buffer per name; a name that is not
 * UTF-8 comes back with U+FFFD in it, and then the folder is read again as bytes so that such names
 * are kept exactly (restic writes them as \xNN).
 */
export function readNames(dir: FsPath): { name: string; nameRaw?: Buffer }[] {
  const text = fsSync.readdirSync(dir);
  if (!text.some((n) => n.includes('\uFFFD'))) return text.sort(utf8Compare).map((name) => ({ name }));
  return fsSync
    .readdirSync(dir, { encoding: 'buffer' })
    .sort(Buffer.compare)
    .map((b) => ({ name: b.toString('utf8'), nameRaw: isUtf8(b) ? undefined : b }));
}

/** Reads a folder and lstats every entry; throws only when the folder itself cannot be read. */
export function listDir(dir: FsPath): Listing {
  const entries = readNames(dir);
  const stats = new BigInt64Array(entries.length * FIELDS);
  let raws: Listing['raws'] = null;
  let errors: Listing['errors'] = null;
  entries.forEach((e, i) => {
    if (e.nameRaw) (raws ??= entries.map(() => null))[i] = e.nameRaw;
    const st = lstatOrError(joinPath(dir, e.name, e.nameRaw));
    if (st instanceof Error) {
      (errors ??= entries.map(() => null))[i] = errorToWire(st);
      return;
    }
    stats.set([st.dev, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.ino, st.size, st.atimeNs, st.mtimeNs, st.ctimeNs], i * FIELDS);
  });
  return { names: entries.map((e) => e.name), raws, stats, errors };
}

const S_IFMT = 0o170000;

/** The listing whose stats `lastWords` views (the entries of one listing are made together). */
let lastStats: BigInt64Array | null = null;
let lastWords: Int32Array = new Int32Array(0);

/** Where each time is among an entry's FIELDS. */
const TIME_FIELD = { atime: 8, mtime: 9, ctime: 10 } as const;

/** An entry's lstat read from a listing. */
class ListedStat implements EntryStat {
  readonly #s: BigInt64Array;
  /** The same numbers as 32-bit halves (little-endian), to read without making a BigInt. */
  readonly #w: Int32Array;
  readonly #o: number;
  readonly #type: number;

  constructor(s: BigInt64Array, i: number) {
    if (s !== lastStats) {
      lastStats = s;
      lastWords = new Int32Array(s.buffer, s.byteOffset, s.length * 2);
    }
    this.#s = s;
    this.#w = lastWords;
    this.#o = i * FIELDS;
    this.#type = Number(s[this.#o + 1]) & S_IFMT;
  }

  /** Whether the time `which` is the instant RFC 3339 `text` names. */
  timeIs(which: keyof typeof TIME_FIELD, text: string): boolean {
    const at = (this.#o + TIME_FIELD[which]) * 2;
    return timeIsNs(text, this.#w[at + 1], this.#w[at] >>> 0);
  }

  get dev(): bigint { return this.#s[this.#o]; }
  get mode(): bigint { return this.#s[this.#o + 1]; }
  get nlink(): bigint { return this.#s[this.#o + 2]; }
  get uid(): bigint { return this.#s[this.#o + 3]; }
  get gid(): bigint { return this.#s[this.#o + 4]; }
  get rdev(): bigint { return this.#s[this.#o + 5]; }
  get ino(): bigint { return this.#s[this.#o + 6]; }
  get size(): bigint { return this.#s[this.#o + 7]; }
  get atimeNs(): bigint { return this.#s[this.#o + 8]; }
  get mtimeNs(): bigint { return this.#s[this.#o + 9]; }
  get ctimeNs(): bigint { return this.#s[this.#o + 10]; }
  isFile(): boolean { return this.#type === 0o100000; }
  isDirectory(): boolean { return this.#type === 0o040000; }
  isSymbolicLink(): boolean { return this.#type === 0o120000; }
}

/** Whether entry `i` of a listing is a folder, read without building the entry. */
export function listedIsDir(l: Listing, i: number): boolean {
  return !l.errors?.[i] && (Number(l.stats[i * FIELDS + 1]) & S_IFMT) === 0o040000;
}

/** Entry `i` of a listing: its name, its name's bytes when not UTF-8, and its lstat or the error. */
export function listedEntry(l: Listing, i: number): { name: string; nameRaw?: Buffer; stat: EntryStat | Error } {
  const raw = l.raws?.[i];
  const nameRaw = raw ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength) : undefined;
  const e = l.errors?.[i];
  const stat = e ? errorFromWire(e) : new ListedStat(l.stats, i);
  return { name: l.names[i], nameRaw, stat };
}

/**
 * Whether an entry's time `which` is the instant RFC 3339 `text` names (false for text that is
 * not a time): without a BigInt for entries from a listing.
 */
export function statTimeIs(st: EntryStat, which: keyof typeof TIME_FIELD, text: string): boolean {
  if (st instanceof ListedStat) return st.timeIs(which, text);
  try {
    return parseTime(text) === st[`${which}Ns`];
  } catch {
    return false;
  }
}
