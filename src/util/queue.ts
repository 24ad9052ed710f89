/**
 * A first-in first-out queue with a capacity: `push` waits while it is full, so a fast stage
 * cannot run ahead of a slow one (and pile up temporary files); `shift` waits while it is empty and
 * returns `undefined` once the queue is closed and drained.
 */
export class BoundedQueue<T> {
  readonly #capacity: number;
  readonly #items: T[] = [];
  #closed = false;
  #waitingForItem: (() => void)[] = [];
  #waitingForSpace: (() => void)[] = [];

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  async push(item: T): Promise<void> {
    if (this.#closed) throw new Error('push to a closed queue');
    while (this.#items.length >= this.#capacity) await new Promise<void>((r) => this.#waitingForSpace.push(r));
    this.#items.push(item);
    this.#waitingForItem.shift()?.();
  }

  async shift(): Promise<T | undefined> {
    while (this.#items.length === 0) {
      if (this.#closed) return undefined;
      await new Promise<void>((r) => this.#waitingForItem.push(r));
    }
    const item = this.#items.shift() as T;
    this.#waitingForSpace.shift()?.();
    return item;
  }

  /** No more items will come; waiting consumers get `undefined` once the rest is taken. */
  close(): void {
    this.#closed = true;
    for (const r of this.#waitingForItem.splice(0)) r();
  }
}

/**
 * Runs `workers` loops that take items from `input`, pass each through `fn` and push what it returns
 * to `output` (nothing when it returns `null`: the item failed and was recorded). Closes `output`
 * when `input` is drained and every loop is done.
 */
export async function runStage<I, O>(input: BoundedQueue<I>, output: BoundedQueue<O> | null, workers: number, fn: (item: I) => Promise<O | null>): Promise<void> {
  const loop = async (): Promise<void> => {
    for (let item = await input.shift(); item !== undefined; item = await input.shift()) {
      const out = await fn(item);
      if (out !== null && output) await output.push(out);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, workers) }, loop));
  } finally {
    output?.close();
  }
}
