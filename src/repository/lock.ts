import os from 'node:os';
import { CairnError } from '../errors.js';
import { formatTime, parseTime } from '../fs/time.js';
import type { Id } from './id.js';
import type { Repository } from './repository.js';
import { currentUser } from './snapshot.js';

/** A lock file's JSON, as restic writes it. */
export interface LockJSON {
  time: string;
  exclusive: boolean;
  hostname: string;
  username: string;
  pid: number;
  uid: number;
  gid: number;
}

/** restic's rules: a lock older than this is stale; locks are refreshed well inside it. */
export const STALE_AFTER_MS = 30 * 60 * 1000;
export const REFRESH_EVERY_MS = 5 * 60 * 1000;
/**
 * After writing our lock, wait this long and look again, so that of two clients racing at least
 * one sees the other's lock even where listings lag (restic waits as long). Where the backend
 * lists a saved file at once (a local disk), looking again right away is enough: whichever
 * client wrote last lists after both writes, sees the other's lock and backs off.
 */
const SETTLE_MS = 200;

/** Whether a process with this pid runs on this host (one we may not signal counts as running). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function isStale(l: LockJSON, now = Date.now()): boolean {
  let t: number;
  try {
    t = Number(parseTime(l.time) / 1_000_000n);
  } catch {
    return true;
  }
  if (now - t > STALE_AFTER_MS) return true;
  return l.hostname === os.hostname() && !processAlive(l.pid);
}

export function describeLock(l: LockJSON, id: Id): string {
  return `${l.exclusive ? 'exclusive' : 'non-exclusive'} lock ${id.slice(0, 8)} held by PID ${l.pid} on ${l.hostname} by ${l.username} since ${l.time}`;
}

/**
 * A lock held on a repository. Acquire with `Lock.acquire`; it refreshes itself in the background
 * (writing the new lock file before removing the old one) until `release`.
 */
export class Lock {
  readonly #repo: Repository;
  readonly #exclusive: boolean;
  #id: Id;
  #timer: NodeJS.Timeout | null = null;
  #released = false;

  private constructor(repo: Repository, exclusive: boolean, id: Id) {
    this.#repo = repo;
    this.#exclusive = exclusive;
    this.#id = id;
  }

  get id(): Id {
    return this.#id;
  }

  static async acquire(repo: Repository, exclusive: boolean): Promise<Lock> {
    const lock = await Lock.begin(repo, exclusive);
    await lock.confirmed;
    return lock;
  }

  /**
   * Checks for conflicting locks and writes ours; `confirmed` settles after restic's wait-and-look-
   * again (rejecting with LOCKED, our lock removed, when a racing client won). Callers may read
   * meanwhile and must not write before `confirmed` resolves (see Repository.gateWrites).
   */
  static async begin(repo: Repository, exclusive: boolean): Promise<Lock> {
    const atOnce = repo.backend.listsAtOnce?.() ?? Promise.resolve(false);
    await Lock.#checkConflicts(repo, exclusive, null);
    const id = await repo.saveJSON('lock', JSON.stringify(Lock.#body(exclusive)));
    const lock = new Lock(repo, exclusive, id);
    const settle = (await atOnce) ? 0 : SETTLE_MS;
    lock.confirmed = (async () => {
      if (settle > 0) await new Promise((r) => setTimeout(r, settle));
      if (lock.#released) return;
      try {
        await Lock.#checkConflicts(repo, exclusive, id);
      } catch (err) {
        lock.#released = true;
        await repo.backend.remove({ type: 'lock', name: id });
        throw err;
      }
      if (!lock.#released) {
        lock.#timer = setInterval(() => void lock.#refresh(), REFRESH_EVERY_MS);
        lock.#timer.unref();
      }
    })();
    lock.confirmed.catch(() => undefined);
    return lock;
  }

  /** Settles once the lock is known to be ours (see `begin`). */
  confirmed: Promise<void> = Promise.resolve();

  static #body(exclusive: boolean): LockJSON {
    const u = currentUser();
    return {
      time: formatTime(BigInt(Date.now()) * 1_000_000n),
      exclusive,
      hostname: os.hostname(),
      username: u.username,
      pid: process.pid,
      uid: u.uid,
      gid: u.gid,
    };
  }

  static async #checkConflicts(repo: Repository, exclusive: boolean, own: Id | null): Promise<void> {
    for (const id of await repo.listIds('lock')) {
      if (id === own) continue;
      let l: LockJSON;
      try {
        l = await repo.loadJSON<LockJSON>('lock', id);
      } catch (err) {
        // A lock removed while we listed, or one we cannot read, blocks nobody.
        if (err instanceof CairnError && (err.code === 'NOT_FOUND' || err.code === 'INTEGRITY')) continue;
        throw err;
      }
      if (isStale(l)) continue;
      if (exclusive || l.exclusive) {
        throw new CairnError('LOCKED', `repository is already locked: ${describeLock(l, id)}; if that process is gone, run "cairn unlock"`);
      }
    }
  }

  async #refresh(): Promise<void> {
    if (this.#released) return;
    try {
      const id = await this.#repo.saveJSON('lock', JSON.stringify(Lock.#body(this.#exclusive)));
      const old = this.#id;
      this.#id = id;
      await this.#repo.backend.remove({ type: 'lock', name: old });
    } catch {
      // A failed refresh is retried at the next interval; the lock stays valid for 30 minutes.
    }
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#repo.backend.remove({ type: 'lock', name: this.#id });
  }
}

/** Removes stale locks (all locks with `all`); returns the ids removed. */
export async function removeLocks(repo: Repository, all: boolean): Promise<Id[]> {
  const removed: Id[] = [];
  for (const id of await repo.listIds('lock')) {
    if (!all) {
      let l: LockJSON;
      try {
        l = await repo.loadJSON<LockJSON>('lock', id);
      } catch {
        continue;
      }
      if (!isStale(l)) continue;
    }
    await repo.backend.remove({ type: 'lock', name: id });
    removed.push(id);
  }
  return removed;
}
