/**
 * Jobs: one run of a plan, made of tasks. The runner keeps a queue in the catalog (every state
 * change is written before it is announced), runs at most `concurrency` jobs at once and never two
 * of one plan, retries failed tasks with exponential backoff, and on shutdown interrupts what is
 * still running after a grace period, leaving those jobs `pending` for the next start.
 */
import { EventEmitter } from 'node:events';
import { CairnError } from '../errors.js';
import { databaseTaskName, type Plan, type PathSource } from './config.js';
import type { JobEvent, JobKind, JobRecord, JobTrigger, ServiceCatalog, TaskRecord } from './catalog.js';
import { notify, runHooks } from './hooks.js';
import type { RepositoryRef } from './backup-plan.js';
import { targetRunner, type TargetOutcome, type TargetProgress } from './targets.js';

/** Runs one task of a job whose sources are not plain folders (an HTTP export endpoint, a database). */
export type SourceTaskRunner = (plan: Plan, task: TaskRecord, ctx: { jobId: string; signal: AbortSignal; onProgress: (p: TargetProgress) => void; defaultRepository: RepositoryRef }) => Promise<TargetOutcome>;

/** Runs the one task of a check job (see check-plan.ts). */
export type CheckTaskRunner = (plan: Plan, job: JobRecord, ctx: { signal: AbortSignal; onProgress: (p: TargetProgress) => void; defaultRepository: RepositoryRef }) => Promise<TargetOutcome>;

export interface JobRunnerOptions {
  concurrency: number;
  retryBaseMs: number;
  defaultRepository: RepositoryRef;
  /** Where tasks of `http` and `database` sources go. */
  sourceTask?: SourceTaskRunner;
  /** Where check jobs go. */
  checkTask?: CheckTaskRunner;
  log: (level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => void;
}

const PROGRESS_SAVE_MS = 1000;
/** Errors that another attempt would meet again. */
const PERMANENT: string[] = ['BAD_INPUT', 'WRONG_PASSWORD', 'NOT_A_REPOSITORY'];
const MAX_BACKOFF_MS = 5 * 60_000;

/** The tasks a plan's job is made of. */
export function taskNames(plan: Plan): string[] {
  const http = plan.sources.find((s) => s.kind === 'http');
  if (http && http.kind === 'http') return http.endpoints.map((e) => e.name);
  const dbs = plan.sources.filter((s) => s.kind === 'database');
  if (dbs.length > 0) return dbs.map(databaseTaskName);
  return [plan.target.kind === 'repository' ? 'backup' : plan.target.kind];
}

class Shutdown extends Error {}

interface Queued {
  id: string;
  /** Jobs of one plan run one after the other. */
  plan: string;
  kind: JobKind;
  /** An ad-hoc job carries its own plan and is never merged with another. */
  adhoc: boolean;
}

interface Running {
  controller: AbortController;
  done: Promise<void>;
}

/**
 * Emits `event` (jobId, JobEvent) for every state change and progress report, and `finished`
 * (JobRecord) when a job reaches a final state.
 */
export class JobRunner extends EventEmitter {
  readonly #catalog: ServiceCatalog;
  readonly #opts: JobRunnerOptions;
  readonly #queue: Queued[] = [];
  readonly #running = new Map<string, Running>();
  readonly #runningPlans = new Set<string>();
  #stopping = false;

  constructor(catalog: ServiceCatalog, opts: JobRunnerOptions) {
    super();
    this.#catalog = catalog;
    this.#opts = opts;
  }

  /** Queues again what was pending or running when the daemon last stopped. */
  async resume(): Promise<JobRecord[]> {
    const jobs = await this.#catalog.unfinishedJobs();
    for (const j of jobs) {
      for (const t of j.tasks) if (t.state === 'running') await this.#catalog.updateTask(t.id, { state: 'pending' });
      if (j.state === 'running') await this.#catalog.updateJob(j.id, { state: 'pending' });
      await this.#event(j.id, 'state', { state: 'pending', note: 'resumed after restart' });
      this.#queue.push({ id: j.id, plan: j.plan ?? j.id, kind: j.kind, adhoc: j.kind === 'backup' && Boolean(j.meta) });
    }
    this.#pump();
    return jobs;
  }

  isPlanBusy(plan: string): boolean {
    return this.#runningPlans.has(plan);
  }

  /**
   * Queues a run of a plan, or (`kind: 'check'`) a check of its repository. A plan with a backup
   * job that has not started yet gets no second one: the waiting job will see the same changes;
   * nor does a plan with a check waiting get a second check.
   */
  async enqueue(plan: Plan, trigger: JobTrigger, extra: { changedPaths?: string[] | null; meta?: Record<string, unknown> | null; kind?: JobKind; alone?: boolean } = {}): Promise<JobRecord> {
    if (this.#stopping) throw new CairnError('CONFLICT', 'the daemon is shutting down and takes no new jobs');
    const kind = extra.kind ?? 'backup';
    // An ad-hoc job (its own plan in `meta`), or one asked to be `alone`, is never shared.
    const adhoc = extra.alone ?? (kind === 'backup' && Boolean(extra.meta));
    const waiting = adhoc ? undefined : this.#queue.find((q) => q.plan === plan.name && q.kind === kind && !q.adhoc);
    if (waiting) {
      const job = await this.#catalog.getJob(waiting.id);
      if (job) return job;
    }
    const tasks = kind === 'check' ? ['check'] : taskNames(plan);
    const job = await this.#catalog.createJob({ plan: plan.name, kind, trigger, tasks, changedPaths: extra.changedPaths ?? null, meta: extra.meta ?? null });
    await this.#event(job.id, 'state', { state: 'pending', trigger, ...(kind === 'check' && { kind }) });
    this.#queue.push({ id: job.id, plan: plan.name, kind, adhoc });
    this.#pump();
    return job;
  }

  /** Cancels a job: a waiting one at once, a running one as soon as its task stops. */
  async cancel(id: string): Promise<JobRecord> {
    const job = await this.#catalog.getJob(id);
    if (!job) throw new CairnError('NOT_FOUND', `no job ${id}`);
    if (job.state !== 'pending' && job.state !== 'running') throw new CairnError('CONFLICT', `job ${id} is already ${job.state}`);
    const running = this.#running.get(id);
    if (running) {
      running.controller.abort(new CairnError('INTERRUPTED', 'cancelled'));
      await running.done;
    } else {
      const i = this.#queue.findIndex((q) => q.id === id);
      if (i >= 0) this.#queue.splice(i, 1);
      await this.#finish(job, 'cancelled', 'cancelled before it started');
    }
    return (await this.#catalog.getJob(id))!;
  }

  /** Jobs running now. */
  runningJobs(): string[] {
    return [...this.#running.keys()];
  }

  /**
   * Takes no new jobs, waits up to `graceMs` for running ones, then interrupts the rest, which
   * go back to `pending` and resume on the next start.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    this.#queue.length = 0;
    const all = () => Promise.all([...this.#running.values()].map((r) => r.done));
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
    const outcome = await Promise.race([all().then(() => 'done' as const), graceOver]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      for (const r of this.#running.values()) r.controller.abort(new Shutdown('shutdown'));
      await all();
    }
  }

  #pump(): void {
    if (this.#stopping) return;
    for (let i = 0; i < this.#queue.length && this.#running.size < this.#opts.concurrency; ) {
      const q = this.#queue[i];
      if (this.#runningPlans.has(q.plan)) {
        i++;
        continue;
      }
      this.#queue.splice(i, 1);
      this.#start(q);
    }
  }

  #start(q: Queued): void {
    const controller = new AbortController();
    const entry: Running = { controller, done: Promise.resolve() };
    this.#running.set(q.id, entry);
    this.#runningPlans.add(q.plan);
    entry.done = (async () => {
      try {
        const job = await this.#catalog.getJob(q.id);
        if (job && (job.state === 'pending' || job.state === 'running')) await this.#run(job, controller.signal);
      } catch (err) {
        this.#opts.log('error', 'job failed unexpectedly', { job: q.id, error: (err as Error).message });
      } finally {
        this.#running.delete(q.id);
        this.#runningPlans.delete(q.plan);
        setImmediate(() => this.#pump());
      }
    })();
  }

  async #resolvePlan(job: JobRecord): Promise<Plan | null> {
    if (job.meta && typeof job.meta.plan === 'object' && job.meta.plan) return job.meta.plan as Plan;
    if (job.plan === null) return null;
    return (await this.#catalog.getPlan(job.plan))?.plan ?? null;
  }

  async #run(job: JobRecord, signal: AbortSignal): Promise<void> {
    const plan = await this.#resolvePlan(job);
    if (!plan) {
      await this.#finish(job, 'cancelled', `plan ${job.plan ?? '?'} no longer exists`);
      return;
    }
    if (job.kind === 'check') return this.#runCheck(job, plan, signal);
    // Changes the watcher journaled and items that failed before ride along with this run; they
    // are cleared only when it succeeds.
    const journal = plan.watch ? await this.#catalog.journalEntries(plan.name) : { ids: [], paths: [] };
    const retries = job.meta ? { ids: [], items: [] } : await this.#catalog.retryItems(plan.name);
    const changed = [...new Set([...(job.changedPaths ?? []), ...journal.paths, ...retries.items.filter((i) => i.startsWith('/'))])];
    // Only a run the watcher started knows every change since the last snapshot; any other run
    // (schedule, start-up, on demand) may follow changes nobody saw, so it looks at everything.
    const changedPaths = job.trigger === 'watch' ? changed : null;
    const startedAt = Date.now();
    await this.#catalog.updateJob(job.id, { state: 'running', startedAt, attempts: job.attempts + 1, changedPaths: changed.length > 0 ? changed : null, error: null });
    await this.#event(job.id, 'state', { state: 'running', plan: plan.name, changedPaths: changed.length });

    const totals = { files: 0, bytes: 0 };
    const unreadable: string[] = [];
    let failure: string | null = null;
    try {
      const hookEnv = { CAIRN_PLAN: plan.name, CAIRN_JOB: job.id };
      await runHooks(plan, 'before', hookEnv, signal);
      for (const task of job.tasks) {
        if (task.state === 'done') {
          totals.files += task.files;
          totals.bytes += task.bytes;
          continue;
        }
        const outcome = await this.#runTask(job, plan, task, changedPaths, signal, totals, unreadable);
        if (outcome === null) failure ??= `task ${task.name} failed`;
      }
      if (failure === null) await runHooks(plan, 'after', hookEnv, signal);
    } catch (err) {
      if (signal.aborted) return this.#interrupted(job, plan, signal);
      failure = (err as Error).message;
    }
    if (signal.aborted) return this.#interrupted(job, plan, signal);
    await this.#catalog.updateJob(job.id, { files: totals.files, bytes: totals.bytes });
    if (failure === null) {
      await this.#catalog.clearJournal(journal.ids);
      await this.#catalog.clearRetries(retries.ids);
    }
    if (unreadable.length > 0) await this.#catalog.addRetry(plan.name, unreadable, 'could not be read', 1);
    let fresh = (await this.#catalog.getJob(job.id))!;
    if (failure !== null) {
      // Tasks a failed hook kept from starting did not run.
      for (const t of fresh.tasks) if (t.state === 'pending') await this.#catalog.updateTask(t.id, { state: 'cancelled', finishedAt: Date.now() });
      fresh = (await this.#catalog.getJob(job.id))!;
    }
    await this.#finish(fresh, failure === null ? 'done' : 'failed', failure, plan);
  }

  /**
   * A check job: its one task, with the retries any task gets (a repository that could not be
   * reached may be there next time), but none after it found damage. No hooks run, and the
   * watch journal and the retry list, which belong to backups, stay as they are.
   */
  async #runCheck(job: JobRecord, plan: Plan, signal: AbortSignal): Promise<void> {
    await this.#catalog.updateJob(job.id, { state: 'running', startedAt: Date.now(), attempts: job.attempts + 1, error: null });
    await this.#event(job.id, 'state', { state: 'running', plan: plan.name, kind: 'check' });
    const totals = { files: 0, bytes: 0 };
    let failure: string | null = null;
    try {
      const task = job.tasks[0];
      if (task.state !== 'done' && (await this.#runTask(job, plan, task, null, signal, totals, [])) === null) {
        failure = (await this.#catalog.getJob(job.id))!.tasks[0].error ?? 'check failed';
      }
    } catch (err) {
      if (signal.aborted) return this.#interrupted(job, plan, signal);
      failure = (err as Error).message;
    }
    if (signal.aborted) return this.#interrupted(job, plan, signal);
    await this.#catalog.updateJob(job.id, { files: totals.files, bytes: totals.bytes });
    await this.#finish((await this.#catalog.getJob(job.id))!, failure === null ? 'done' : 'failed', failure, plan);
  }

  /** Runs one task with retries; the outcome, or null when it failed for good. */
  async #runTask(job: JobRecord, plan: Plan, task: TaskRecord, changedPaths: string[] | null, signal: AbortSignal, totals: { files: number; bytes: number }, unreadable: string[]): Promise<TargetOutcome | null> {
    let attempts = task.attempts;
    const base = { files: totals.files, bytes: totals.bytes };
    while (true) {
      attempts++;
      await this.#catalog.updateTask(task.id, { state: 'running', attempts, startedAt: Date.now(), error: null });
      await this.#event(job.id, 'task', { task: task.name, state: 'running', attempt: attempts });
      let lastSave = 0;
      const onProgress = (p: TargetProgress) => {
        totals.files = base.files + p.files;
        totals.bytes = base.bytes + p.bytes;
        this.emit('event', job.id, { seq: 0, at: new Date().toISOString(), type: 'progress', data: { task: task.name, files: totals.files, bytes: totals.bytes, current: p.current } } satisfies JobEvent);
        const now = Date.now();
        if (now - lastSave >= PROGRESS_SAVE_MS) {
          lastSave = now;
          void this.#catalog.updateJob(job.id, { files: totals.files, bytes: totals.bytes }).catch(() => undefined);
        }
      };
      try {
        const outcome = await this.#execute(job, plan, task, changedPaths, signal, onProgress, unreadable);
        totals.files = base.files + outcome.files;
        totals.bytes = base.bytes + outcome.bytes;
        await this.#catalog.updateTask(task.id, { state: 'done', files: outcome.files, bytes: outcome.bytes, result: outcome.result, finishedAt: Date.now() });
        await this.#event(job.id, 'task', { task: task.name, state: 'done', files: outcome.files, bytes: outcome.bytes, result: outcome.result });
        return outcome;
      } catch (err) {
        if (signal.aborted) {
          // Interrupted: the task starts over on the next run (a backup leaves no snapshot behind, only packs it reuses).
          await this.#catalog.updateTask(task.id, { state: 'pending', attempts: attempts - 1, error: null });
          throw err;
        }
        const message = (err as Error).message;
        // Damage a check found stays found: it is reported, not tried again.
        const permanent = err instanceof CairnError && (PERMANENT.includes(err.code) || (job.kind === 'check' && err.code === 'INTEGRITY'));
        if (permanent || attempts >= plan.maxAttempts) {
          // A task may say what it found before it failed (a check's problems).
          const result = (err as { result?: Record<string, unknown> }).result;
          await this.#catalog.updateTask(task.id, { state: 'failed', error: message, finishedAt: Date.now(), ...(result && { result }) });
          await this.#event(job.id, 'task', { task: task.name, state: 'failed', attempt: attempts, error: message });
          if (job.kind === 'backup') await this.#catalog.addRetry(plan.name, [task.name], message, attempts);
          return null;
        }
        const delay = Math.min(MAX_BACKOFF_MS, this.#opts.retryBaseMs * 2 ** (attempts - 1)) * (0.5 + Math.random() / 2);
        await this.#catalog.updateTask(task.id, { state: 'pending', error: message });
        await this.#event(job.id, 'task', { task: task.name, state: 'pending', attempt: attempts, error: message, retryInMs: Math.round(delay) });
        await sleep(delay, signal);
      }
    }
  }

  async #execute(job: JobRecord, plan: Plan, task: TaskRecord, changedPaths: string[] | null, signal: AbortSignal, onProgress: (p: TargetProgress) => void, unreadable: string[]): Promise<TargetOutcome> {
    if (job.kind === 'check') {
      if (!this.#opts.checkTask) throw new CairnError('BAD_INPUT', 'checks are not available in this build');
      return this.#opts.checkTask(plan, job, { signal, onProgress, defaultRepository: this.#opts.defaultRepository });
    }
    if (plan.sources.some((s) => s.kind === 'http' || s.kind === 'database')) {
      if (!this.#opts.sourceTask) throw new CairnError('BAD_INPUT', 'http and database sources are not available in this build');
      return this.#opts.sourceTask(plan, task, { jobId: job.id, signal, onProgress, defaultRepository: this.#opts.defaultRepository });
    }
    const sources = (plan.sources as PathSource[]).map((s) => ({
      path: s.path,
      excludes: s.excludes,
      excludeCaches: s.excludeCaches,
      excludeIfPresent: s.excludeIfPresent,
      excludeLargerThan: s.excludeLargerThan,
    }));
    return targetRunner(plan.target.kind)(plan.target, sources, {
      plan,
      jobId: job.id,
      changedPaths,
      signal,
      onProgress,
      onItemError: (item, message) => {
        unreadable.push(item);
        void this.#event(job.id, 'log', { level: 'warn', item, message }).catch(() => undefined);
      },
      defaultRepository: this.#opts.defaultRepository,
    });
  }

  async #interrupted(job: JobRecord, plan: Plan, signal: AbortSignal): Promise<void> {
    if (signal.reason instanceof Shutdown) {
      await this.#catalog.updateJob(job.id, { state: 'pending', error: 'interrupted by shutdown; resumes on the next start' });
      await this.#event(job.id, 'state', { state: 'pending', note: 'interrupted by shutdown; resumes on the next start' });
      this.#opts.log('info', 'job interrupted by shutdown', { job: job.id, plan: plan.name });
      return;
    }
    const fresh = (await this.#catalog.getJob(job.id))!;
    for (const t of fresh.tasks) if (t.state === 'pending' || t.state === 'running') await this.#catalog.updateTask(t.id, { state: 'cancelled', finishedAt: Date.now() });
    await this.#finish((await this.#catalog.getJob(job.id))!, 'cancelled', 'cancelled', plan);
  }

  async #finish(job: JobRecord, state: 'done' | 'failed' | 'cancelled', error: string | null, plan?: Plan): Promise<void> {
    await this.#catalog.updateJob(job.id, { state, error, finishedAt: Date.now() });
    await this.#event(job.id, 'state', { state, error, files: job.files, bytes: job.bytes });
    const final = (await this.#catalog.getJob(job.id))!;
    this.#opts.log(state === 'failed' ? 'warn' : 'info', `job ${state}`, { job: job.id, plan: job.plan, error });
    this.emit('finished', final);
    if (plan && state !== 'cancelled') {
      const problem = await notify(plan, { plan: plan.name, job: job.id, kind: final.kind, state, error, files: final.files, bytes: final.bytes });
      if (problem) this.#opts.log('warn', problem, { plan: plan.name, job: job.id });
    }
  }

  async #event(jobId: string, type: JobEvent['type'], data: Record<string, unknown>): Promise<void> {
    const e = await this.#catalog.addEvent(jobId, type, data);
    this.emit('event', jobId, e);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason as Error);
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
