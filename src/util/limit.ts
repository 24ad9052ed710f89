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

/** Maps `items` through `fn` with at most `n` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}
