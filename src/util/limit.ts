/** Runs at most `n` tasks at once; the rest wait their turn in order. */
export class Limiter {
  readonly #max: number;
  #active = 0;
  // A queue with a moving head: Array.shift() is linear, and tens of thousands may wait.
  #waiting: (() => void)[] = [];
  #head = 0;

  constructor(max: number) {
    this.#max = Math.max(1, max);
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  acquire(): Promise<void> {
    if (this.#active < this.#max) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    if (this.#head < this.#waiting.length) {
      const next = this.#waiting[this.#head++];
      if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
        this.#waiting = this.#waiting.slice(this.#head);
        this.#head = 0;
      }
      next();
    } else this.#active--;
  }
}

/**
 * Maps `items` through `fn` with at most `n` calls in flight; results keep the input order. The
 * first call that fails fails the whole, and no call starts after it (those in flight finish).
 */
export async function mapLimit<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/**
 * Lets the event loop run once the caller has held the thread for `ms`. A chain of promises
 * that settle at once (blobs from a cache, say) never returns to the loop by itself, and I/O
 * that finished meanwhile (a pack loaded for a worker, a worker's reply) waits until it ends.
 * Every chain that asks while a pause is pending waits for the same one, so the loop gets its
 * turn once for all of them rather than after each in turn.
 */
export class Yielder {
  readonly #ms: number;
  #since = performance.now();
  #pending: Promise<void> | null = null;

  constructor(ms = 4) {
    this.#ms = ms;
  }

  /** A promise to await when it is time to let the loop run; otherwise nothing. */
  maybe(): Promise<void> | undefined {
    if (this.#pending) return this.#pending;
    if (performance.now() - this.#since < this.#ms) return undefined;
    this.#pending = new Promise<void>((resolve) =>
      setImmediate(() => {
        this.#pending = null;
        this.#since = performance.now();
        resolve();
      }),
    );
    return this.#pending;
  }
}
