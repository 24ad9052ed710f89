import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError } from '../errors.js';
import type { Backend, FileInfo, FileType, Handle } from './backend.js';

export interface FaultOptions {
  /** Share of calls that fail (before or after doing their work). */
  failRate?: number;
  /** Share of calls that stall for `stallMs` first. */
  stallRate?: number;
  stallMs?: number;
  /** Latency added to every call. */
  latencyMs?: number;
  /** Share of ranged loads that return fewer bytes than asked for (a body cut short). */
  shortReadRate?: number;
  /** Seed for the fault sequence, so a failing run can be repeated. */
  seed?: number;
}

/**
 * A backend that misbehaves on purpose, for tests: it fails a share of calls (some after the
 * write went through, like a lost acknowledgement), stalls now and then, and cuts reads short.
 * Faults that cannot be made for real on loopback; everything else goes to the real backend.
 */
export class FaultyBackend implements Backend {
  readonly #inner: Backend;
  readonly #o: Required<FaultOptions>;
  #state: number;
  faults = 0;

  constructor(inner: Backend, opts: FaultOptions = {}) {
    this.#inner = inner;
    this.#o = { failRate: 0.1, stallRate: 0, stallMs: 200, latencyMs: 0, shortReadRate: 0, seed: 1, ...opts };
    this.#state = this.#o.seed >>> 0 || 1;
  }

  get location(): string {
    return this.#inner.location;
  }

  #random(): number {
    let x = this.#state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#state = x >>> 0;
    return this.#state / 2 ** 32;
  }

  async #before(what: string): Promise<boolean> {
    if (this.#o.latencyMs) await sleep(this.#o.latencyMs);
    if (this.#random() < this.#o.stallRate) await sleep(this.#o.stallMs);
    const fail = this.#random() < this.#o.failRate;
    if (fail && this.#random() < 0.5) {
      this.faults++;
      throw new CairnError('BACKEND_UNAVAILABLE', `${what}: injected fault (connection reset)`);
    }
    return fail;
  }

  #after(what: string, failAfter: boolean): void {
    if (failAfter) {
      this.faults++;
      throw new CairnError('BACKEND_UNAVAILABLE', `${what}: injected fault after the call (lost reply)`);
    }
  }

  async create(): Promise<void> {
    return this.#inner.create();
  }

  async save(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    const f = await this.#before('save');
    await this.#inner.save(h, data, signal);
    this.#after('save', f);
  }

  async load(h: Handle, offset?: number, length?: number, signal?: AbortSignal): Promise<Buffer> {
    const f = await this.#before('load');
    const b = await this.#inner.load(h, offset, length, signal);
    this.#after('load', f);
    if (length !== undefined && b.length > 1 && this.#random() < this.#o.shortReadRate) {
      this.faults++;
      return b.subarray(0, Math.floor(b.length / 2));
    }
    return b;
  }

  async stat(h: Handle): Promise<FileInfo> {
    const f = await this.#before('stat');
    const r = await this.#inner.stat(h);
    this.#after('stat', f);
    return r;
  }

  async *list(type: FileType, signal?: AbortSignal): AsyncIterable<FileInfo> {
    const f = await this.#before('list');
    const all: FileInfo[] = [];
    for await (const x of this.#inner.list(type, signal)) all.push(x);
    this.#after('list', f);
    yield* all;
  }

  async remove(h: Handle): Promise<void> {
    const f = await this.#before('remove');
    await this.#inner.remove(h);
    this.#after('remove', f);
  }

  async exists(): Promise<boolean> {
    const f = await this.#before('exists');
    const r = await this.#inner.exists();
    this.#after('exists', f);
    return r;
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
