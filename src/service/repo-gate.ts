/**
 * The daemon's own jobs take turns on a repository before they lock it. Without this, one plan's
 * prune (an exclusive lock) made another plan's backup or check into the same repository fail
 * with "locked" once its few retries were spent, though both jobs were the daemon's. Now a job
 * that reads and adds (backup, check) waits here while one of the daemon's jobs holds the
 * repository exclusively (retention, prune), and the other way round; locks held by other
 * clients (a `cairn prune` at the shell, restic) are still met with the repository lock and its
 * retries.
 *
 * First come, first served: a job that wants the repository alone waits for those before it, and
 * those after it wait for it (so a steady stream of backups cannot starve a prune).
 */
import { CairnError } from '../errors.js';

interface Waiter {
  exclusive: boolean;
  grant: () => void;
}

interface Gate {
  shared: number;
  exclusive: boolean;
  queue: Waiter[];
}

export class RepoGate {
  readonly #gates = new Map<string, Gate>();

  /** Waits for a turn beside other shared holders; returns the function that ends it. */
  shared(location: string, signal?: AbortSignal): Promise<() => void> {
    return this.#enter(location, false, signal);
  }

  /** Waits for a turn alone; returns the function that ends it. */
  exclusive(location: string, signal?: AbortSignal): Promise<() => void> {
    return this.#enter(location, true, signal);
  }

  /** Holders and waiters now, for tests and status. */
  state(location: string): { shared: number; exclusive: boolean; waiting: number } {
    const g = this.#gates.get(location);
    return { shared: g?.shared ?? 0, exclusive: g?.exclusive ?? false, waiting: g?.queue.length ?? 0 };
  }

  #enter(location: string, exclusive: boolean, signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(new CairnError('INTERRUPTED', 'interrupted while waiting for the repository'));
    let g = this.#gates.get(location);
    if (!g) this.#gates.set(location, (g = { shared: 0, exclusive: false, queue: [] }));
    const gate = g;
    return new Promise((resolve, reject) => {
      let done = false;
      const leave = (): void => {
        if (done) return;
        done = true;
        if (exclusive) gate.exclusive = false;
        else gate.shared--;
        this.#advance(location, gate);
      };
      const waiter: Waiter = {
        exclusive,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          if (exclusive) gate.exclusive = true;
          else gate.shared++;
          resolve(leave);
        },
      };
      const onAbort = (): void => {
        const i = gate.queue.indexOf(waiter);
        if (i < 0) return;
        gate.queue.splice(i, 1);
        this.#advance(location, gate);
        reject(new CairnError('INTERRUPTED', 'interrupted while waiting for the repository'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      gate.queue.push(waiter);
      this.#advance(location, gate);
    });
  }

  #advance(location: string, g: Gate): void {
    while (g.queue.length > 0 && !g.exclusive) {
      const next = g.queue[0];
      if (next.exclusive && g.shared > 0) break;
      g.queue.shift();
      next.grant();
      if (next.exclusive) break;
    }
    if (g.queue.length === 0 && g.shared === 0 && !g.exclusive) this.#gates.delete(location);
  }
}

/** The daemon's gate (one per process: jobs of every plan share it). */
export const repoGate = new RepoGate();
