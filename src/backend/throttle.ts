import fs from 'node:fs/promises';
import { CairnError } from '../errors.js';
import { replaceFile, type Backend, type FileInfo, type FileType, type Handle } from './backend.js';

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(new CairnError('INTERRUPTED', 'interrupted'));
        return;
      }
      const onAbort = (): void => {
        clearTimeout(t);
        reject(new CairnError('INTERRUPTED', 'interrupted while keeping to the transfer limit'));
      };
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/**
 * A token bucket of bytes: `take(n)` returns once n bytes fit under the rate. A call reserves its
 * bytes at once and waits out its share, so calls made together queue behind one another and the
 * average stays at the rate; up to one second's worth may pass at once after a pause.
 */
export class Throttle {
  readonly #rate: number;
  readonly #clock: Clock;
  readonly #signal?: AbortSignal;
  #tokens: number;
  #last: number;

  /** `signal` (the command's) ends every wait at once with `INTERRUPTED`: a wait may be long at a low rate. */
  constructor(bytesPerSecond: number, clock: Clock = realClock, signal?: AbortSignal) {
    if (!(bytesPerSecond > 0)) throw new CairnError('INTERNAL', 'a throttle needs a positive rate');
    this.#rate = bytesPerSecond;
    this.#clock = clock;
    this.#signal = signal;
    this.#tokens = bytesPerSecond;
    this.#last = clock.now();
  }

  async take(bytes: number): Promise<void> {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#last) / 1000) * this.#rate);
    this.#last = now;
    this.#tokens -= bytes;
    if (this.#tokens < 0) await this.#clock.sleep((-this.#tokens / this.#rate) * 1000, this.#signal);
  }
}

/** restic's --limit-upload / --limit-download: KiB/s as a whole number above 0. */
export function parseRateLimit(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) throw new CairnError('BAD_INPUT', `invalid ${flag} ${JSON.stringify(value)}: give KiB/s as a whole number above 0`);
  return n * 1024;
}

/**
 * A backend whose uploads (saves) and downloads (loads) keep to byte rates, as restic's
 * --limit-upload and --limit-download: each file or range counts whole, when it is sent (before a
 * save) or has arrived (after a load), so the rate holds on average over a few files.
 */
export class ThrottledBackend implements Backend {
  readonly location: string;
  readonly local?: boolean;
  readonly stagingFolder?: string;
  readonly saveFile?: (h: Handle, path: string, signal?: AbortSignal) => Promise<void>;
  readonly loadInto?: (h: Handle, offset: number, into: Buffer, signal?: AbortSignal) => Promise<void>;
  /** The inner backend's, unless downloads are limited: a reader of the file itself would pass the limit by. */
  readonly localPath?: (h: Handle) => Promise<string>;
  readonly #inner: Backend;
  readonly #up?: Throttle;
  readonly #down?: Throttle;

  constructor(inner: Backend, limits: { upload?: Throttle; download?: Throttle }) {
    this.#inner = inner;
    this.#up = limits.upload;
    this.#down = limits.download;
    this.location = inner.location;
    this.local = inner.local;
    this.stagingFolder = inner.stagingFolder;
    if (!limits.download) this.localPath = inner.localPath;
    const saveFile = inner.saveFile?.bind(inner);
    if (saveFile) {
      this.saveFile = async (h, path, signal) => {
        if (this.#up) await this.#up.take((await fs.stat(path)).size);
        return saveFile(h, path, signal);
      };
    }
    const loadInto = inner.loadInto?.bind(inner);
    if (loadInto) {
      this.loadInto = async (h, offset, into, signal) => {
        await loadInto(h, offset, into, signal);
        await this.#down?.take(into.length);
      };
    }
  }

  create(): Promise<void> {
    return this.#inner.create();
  }

  async save(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.#up?.take(data.length);
    return this.#inner.save(h, data, signal);
  }

  async replace(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.#up?.take(data.length);
    return replaceFile(this.#inner, h, data, signal);
  }

  listsAtOnce(): Promise<boolean> {
    return this.#inner.listsAtOnce?.() ?? Promise.resolve(false);
  }

  async load(h: Handle, offset?: number, length?: number, signal?: AbortSignal): Promise<Buffer> {
    const data = await this.#inner.load(h, offset, length, signal);
    await this.#down?.take(data.length);
    return data;
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.#inner.stat(h);
  }

  list(type: FileType, signal?: AbortSignal): AsyncIterable<FileInfo> {
    return this.#inner.list(type, signal);
  }

  remove(h: Handle): Promise<void> {
    return this.#inner.remove(h);
  }

  exists(): Promise<boolean> {
    return this.#inner.exists();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
