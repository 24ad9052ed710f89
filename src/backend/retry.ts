import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError } from '../errors.js';
import { Limiter } from '../util/limit.js';
import { replaceFile, type Backend, type FileInfo, type FileType, type Handle } from './backend.js';
import { UnreachableError } from './remote.js';

export interface RetryOptions {
  /** Attempts after the first. */
  retries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * Attempts after the first for a remote that cannot be reached at all (connection refused,
   * unknown host) and has not answered yet: a wrong location should fail in seconds, while a
   * remote that has answered before gets every retry to ride out an outage.
   */
  unreachableRetries?: number;
  /** Calls in flight at once, so a slow remote is not flooded. */
  concurrency?: number;
  /** Told about each retry (for logs and progress). */
  onRetry?: (what: string, attempt: number, err: unknown) => void;
}

/**
 * Errors that another attempt cannot fix: missing files and buckets, refusals (bad names,
 * credentials), a file shorter than the range asked for, aborts, a server out of room.
 */
function permanent(err: unknown): boolean {
  if (!(err instanceof CairnError)) return false;
  return ['NOT_FOUND', 'BAD_INPUT', 'REPO_EXISTS', 'REPO_NOT_FOUND', 'NOT_A_REPOSITORY', 'INTEGRITY', 'INTERRUPTED', 'WRONG_PASSWORD', 'LOCKED', 'NO_SPACE'].includes(err.code);
}

/**
 * Retries a backend's calls with exponential backoff and full jitter, tells transient failures
 * (connections, timeouts, short reads) from permanent ones (missing files, bad names, aborts),
 * gives up early on a remote that has never been reached, caps the calls in flight and honours
 * cancellation. Composes with any Backend.
 */
export class RetryBackend implements Backend {
  readonly #inner: Backend;
  readonly #opts: Required<Omit<RetryOptions, 'onRetry'>> & Pick<RetryOptions, 'onRetry'>;
  readonly #slots: Limiter;
  /** Whether the remote has answered a call (successfully, or with a permanent refusal). */
  #answered = false;

  /** The inner backend's, so that files staged for saveFile are where it can take them. */
  readonly stagingFolder?: string;
  /** Present when the inner backend has it. */
  readonly saveFile?: (h: Handle, path: string, signal?: AbortSignal) => Promise<void>;
  /** Present when the inner backend has it: a failed attempt may have written part of `into`; the next one writes all of it. */
  readonly loadInto?: (h: Handle, offset: number, into: Buffer, signal?: AbortSignal) => Promise<void>;

  /** The inner backend's: reading a local file in place is not a call to retry. */
  readonly localPath?: (h: Handle) => Promise<string>;

  constructor(inner: Backend, opts: RetryOptions = {}) {
    this.#inner = inner;
    this.#opts = { retries: 10, unreachableRetries: 2, baseDelayMs: 100, maxDelayMs: 15_000, concurrency: 8, ...opts };
    this.#slots = new Limiter(this.#opts.concurrency);
    this.stagingFolder = inner.stagingFolder;
    this.localPath = inner.localPath;
    const saveFile = inner.saveFile?.bind(inner);
    // A failed attempt leaves the file where it was (saveFile removes it only once stored).
    if (saveFile) this.saveFile = (h, path, signal) => this.#retry(`save ${h.type} ${h.name}`, () => saveFile(h, path, signal), signal);
    const loadInto = inner.loadInto?.bind(inner);
    if (loadInto) this.loadInto = (h, offset, into, signal) => this.#retry(`load ${h.type} ${h.name}`, () => loadInto(h, offset, into, signal), signal);
  }

  get location(): string {
    return this.#inner.location;
  }

  async #retry<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw new CairnError('INTERRUPTED', `${what}: interrupted`);
      try {
        const r = await this.#slots.run(fn);
        this.#answered = true;
        return r;
      } catch (err) {
        if (permanent(err)) {
          this.#answered = true;
          throw err;
        }
        const budget = err instanceof UnreachableError && !this.#answered ? this.#opts.unreachableRetries : this.#opts.retries;
        if (attempt >= budget) throw err;
        this.#opts.onRetry?.(what, attempt + 1, err);
        const cap = Math.min(this.#opts.maxDelayMs, this.#opts.baseDelayMs * 2 ** attempt);
        await sleep(Math.random() * cap, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  create(): Promise<void> {
    return this.#retry('create', () => this.#inner.create());
  }

  save(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.#retry(`save ${h.type} ${h.name}`, () => this.#inner.save(h, data, signal), signal);
  }

  replace(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.#retry(`replace ${h.type} ${h.name}`, () => replaceFile(this.#inner, h, data, signal), signal);
  }

  listsAtOnce(): Promise<boolean> {
    return this.#inner.listsAtOnce?.() ?? Promise.resolve(false);
  }

  load(h: Handle, offset = 0, length?: number, signal?: AbortSignal): Promise<Buffer> {
    return this.#retry(
      `load ${h.type} ${h.name}`,
      async () => {
        const b = await this.#inner.load(h, offset, length, signal);
        // A connection cut mid-body can look like a short answer: that is worth another try.
        if (length !== undefined && b.length !== length) throw new CairnError('BACKEND_UNAVAILABLE', `load ${h.type} ${h.name}: got ${b.length} of ${length} bytes`);
        return b;
      },
      signal,
    );
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.#retry(`stat ${h.type} ${h.name}`, () => this.#inner.stat(h));
  }

  async *list(type: FileType, signal?: AbortSignal): AsyncIterable<FileInfo> {
    // A listing that fails half way is started over, so nothing is listed twice or left out.
    const all = await this.#retry(
      `list ${type}`,
      async () => {
        const out: FileInfo[] = [];
        for await (const f of this.#inner.list(type, signal)) out.push(f);
        return out;
      },
      signal,
    );
    yield* all;
  }

  remove(h: Handle): Promise<void> {
    return this.#retry(`remove ${h.type} ${h.name}`, () => this.#inner.remove(h));
  }

  exists(): Promise<boolean> {
    return this.#retry('exists', () => this.#inner.exists());
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
