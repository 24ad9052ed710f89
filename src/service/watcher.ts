/**
 * Watch mode: @parcel/watcher subscriptions on a plan's folders. Every batch of changed paths is
 * written to the catalog's journal first; only then does the debounce timer start, so a SIGKILL
 * after a change loses nothing: the next start finds the journal and backs the paths up.
 */
import fs from 'node:fs';
import path from 'node:path';
import watcher, { type AsyncSubscription } from '@parcel/watcher';
import { buildExcluder } from '../archiver/excludes.js';
import { watchOptions, type Plan } from './config.js';
import type { ServiceCatalog } from './catalog.js';

export type WatchDue = (plan: Plan) => void;

interface Watched {
  subs: AsyncSubscription[];
  timer: NodeJS.Timeout | null;
  /** When the oldest change not yet handed on was seen. */
  first: number | null;
  /** Journal writes in order. */
  chain: Promise<void>;
}

export class PlanWatcher {
  readonly #catalog: ServiceCatalog;
  readonly #due: WatchDue;
  readonly #ignore: string[];
  readonly #onError: (plan: string, err: Error) => void;
  readonly #watched = new Map<string, Watched>();

  /** `ignore`: folders never reported (the daemon's own data folder). */
  constructor(catalog: ServiceCatalog, due: WatchDue, ignore: string[], onError: (plan: string, err: Error) => void) {
    this.#catalog = catalog;
    this.#due = due;
    this.#ignore = ignore.map((p) => path.resolve(p));
    this.#onError = onError;
  }

  /** Starts or restarts watching a plan as it is now (nothing when it is paused or not watched). */
  async sync(plan: Plan): Promise<void> {
    await this.remove(plan.name);
    const opts = watchOptions(plan);
    if (!opts || plan.paused) return;
    const w: Watched = { subs: [], timer: null, first: null, chain: Promise.resolve() };
    this.#watched.set(plan.name, w);
    const ignored = (p: string) => this.#ignore.some((i) => p === i || p.startsWith(`${i}${path.sep}`));
    for (const src of plan.sources) {
      if (src.kind !== 'path') continue;
      const excluder = await buildExcluder({ exclude: src.excludes ?? [] });
      const isDir = fs.statSync(src.path, { throwIfNoEntry: false })?.isDirectory() ?? false;
      // A single file is watched through its folder.
      const dir = isDir ? src.path : path.dirname(src.path);
      const keep = (p: string) => (isDir || p === src.path) && !ignored(p) && !(excluder.patterns.length > 0 && excluder.excluded(p));
      const sub = await watcher.subscribe(
        dir,
        (err, events) => {
          if (err) return this.#onError(plan.name, err);
          const paths = [...new Set(events.map((e) => e.path).filter(keep))];
          if (paths.length === 0) return;
          w.chain = w.chain.then(async () => {
            try {
              await this.#catalog.journal(plan.name, paths);
            } catch (e) {
              this.#onError(plan.name, e as Error);
              return;
            }
            if (this.#watched.get(plan.name) !== w) return;
            const now = Date.now();
            w.first ??= now;
            const wait = Math.max(0, Math.min(opts.debounceMs, w.first + opts.maxDelayMs - now));
            if (w.timer) clearTimeout(w.timer);
            w.timer = setTimeout(() => {
              w.timer = null;
              w.first = null;
              this.#due(plan);
            }, wait);
          });
        },
        { ignore: this.#ignore.filter((i) => i.startsWith(`${dir}${path.sep}`)) },
      );
      w.subs.push(sub);
    }
  }

  async remove(name: string): Promise<void> {
    const w = this.#watched.get(name);
    if (!w) return;
    this.#watched.delete(name);
    if (w.timer) clearTimeout(w.timer);
    await Promise.all(w.subs.map((s) => s.unsubscribe().catch(() => undefined)));
    await w.chain;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#watched.keys()].map((n) => this.remove(n)));
  }

  watching(): string[] {
    return [...this.#watched.keys()];
  }
}
