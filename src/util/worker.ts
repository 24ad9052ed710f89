import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A worker's young generation, in MiB per semi-space. Workers keep few objects alive (their data
 * is in buffers), so a small nursery costs them no time: corpus backups, check and restore ran as
 * fast as with the main thread's 4 MiB, and 10-17 MiB lighter.
 */
export const WORKER_SEMI_SPACE_MB = 1;
let workerHeapSized = false;

/**
 * Starts a worker thread with WORKER_SEMI_SPACE_MB of young generation. V8 reads
 * --max-semi-space-size when an isolate is created and lets it override a Worker's
 * resourceLimits, so the flag is set here, before the first worker starts; the main thread keeps
 * the size it was started with.
 */
export function startWorker(script: URL | string, options: WorkerOptions): Worker {
  if (!workerHeapSized) {
    v8.setFlagsFromString(`--max-semi-space-size=${WORKER_SEMI_SPACE_MB}`);
    workerHeapSized = true;
  }
  return new Worker(script, options);
}

/** What a worker posts once its modules are loaded and its top level has run. */
export const LOADED = { op: 'loaded' } as const;

/**
 * Resolves once the worker has posted LOADED, exited or failed. Terminating a worker while it is
 * still loading its modules leaks the descriptors of the module files it was reading (seen with
 * Node 20), which adds up in a long-lived process whose jobs are interrupted early.
 */
export function whenLoaded(worker: Worker): Promise<void> {
  return new Promise<void>((resolve) => {
    const onMessage = (m: unknown): void => {
      if ((m as { op?: string } | null)?.op === LOADED.op) done();
    };
    const done = (): void => {
      worker.off('message', onMessage);
      worker.off('exit', done);
      worker.off('error', done);
      resolve();
    };
    worker.on('message', onMessage);
    worker.once('exit', done);
    worker.once('error', done);
  });
}

/** Terminates the worker once it is loaded (see whenLoaded), or after `waitMs` in any case. */
export async function terminateLoaded(worker: Worker, loaded: Promise<void>, waitMs = 10_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([loaded, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
  await worker.terminate();
}

/**
 * A worker script's URL: `name` beside the calling module (`from`, its import.meta.url) when that
 * runs built, else the built copy under dist/ (`distPath`) when it runs from source (tests); null
 * when neither exists.
 */
export function workerScript(name: string, from: string, distPath: string): URL | null {
  const here = new URL(`./${name}`, from);
  if (existsSync(fileURLToPath(here))) return here;
  const built = new URL(distPath, from);
  return existsSync(fileURLToPath(built)) ? built : null;
}
