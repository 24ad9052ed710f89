/**
 * The backup service: catalog, plans, scheduler, watcher, job runner and HTTP API in one process.
 *
 * ```ts
 * const daemon = await Daemon.start({ dataDir: '/var/lib/cairn' });
 * // … later, on SIGTERM:
 * await daemon.stop();
 * ```
 */
import { LocalCache } from '../repository/cache.js';
import fs from 'node:fs';
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { CairnError } from '../errors.js';
import { ServiceCatalog, type JobKind, type JobRecord, type JobTrigger, type PlanRecord } from './catalog.js';
import { DEFAULT_PORT, checkPlanPaths, loadConfig, parsePlan, type CheckOptions, type DaemonConfig, type Plan } from './config.js';
import { checkPlan, nextCheckSpec, type CheckSpec } from './check-plan.js';
import { parseCheckReadData } from '../maintenance/check.js';
import { repositoryRunner, type RepositoryRef } from './backup-plan.js';
import { JobRunner } from './jobs.js';
import { ServiceMetrics } from './metrics.js';
import { Scheduler, missedRun } from './scheduler.js';
import { ensureSecretFile, readSecretFile } from './secrets.js';
import { isBehind, targetUsage, type TargetUsage } from './status.js';
import { registerTargetRunner } from './targets.js';
import { runArchive, runMirror } from '../targets/index.js';
import { PlanWatcher } from './watcher.js';
import { exportTask } from './http-export.js';
import { databaseTask } from './db-task.js';
import { buildApi } from './api/server.js';
import type { FastifyInstance } from 'fastify';

registerTargetRunner('repository', repositoryRunner);
registerTargetRunner('archive', async (t, sources, ctx) => {
  const r = await runArchive(t, sources, { signal: ctx.signal, onProgress: ctx.onProgress });
  for (const s of r.skipped) ctx.onItemError(s.path, s.error);
  return { files: r.files, bytes: r.bytes, result: { written: r.written, removed: r.removed } };
});
registerTargetRunner('mirror', async (t, sources, ctx) => {
  const r = await runMirror(t, sources[0], { signal: ctx.signal, onProgress: ctx.onProgress, changedPaths: ctx.changedPaths ?? undefined });
  for (const s of r.skipped) ctx.onItemError(s.path, s.error);
  return { files: r.uploaded + r.deleted, bytes: r.bytes, result: { ...r } };
});

export interface DaemonOptions {
  configFile?: string;
  dataDir?: string;
  /** `HOST:PORT`; 127.0.0.1 unless told otherwise, port 0 for any free one. */
  listen?: string;
  catalog?: string;
  /** Plans added to the catalog at start when it has none of that name (`npm start`'s default plan). */
  defaultPlans?: unknown[];
  logger?: Logger;
}

export interface PlanStatus {
  name: string;
  paused: boolean;
  fromConfig: boolean;
  running: boolean;
  lastSuccess: string | null;
  lastRun: { job: string; state: string; at: string; error: string | null } | null;
  nextRun: string | null;
  pendingChanges: number;
  behind: boolean;
  target: TargetUsage & { kind: string };
  /** The plan's checks (see CheckOptions), when it has a check schedule or has been checked. */
  check: CheckStatus | null;
}

export interface CheckStatus {
  schedule: string | null;
  nextRun: string | null;
  lastRun: { job: string; state: string; at: string; error: string | null } | null;
  lastSuccess: string | null;
  /** Problems the last finished check found (null when it could not look, or none finished). */
  problems: number | null;
}

/** A job as a plan's status shows it: id, state, when it last changed, and its error. */
function runOf(j: JobRecord): { job: string; state: string; at: string; error: string | null } {
  return { job: j.id, state: j.state, at: j.finishedAt ?? j.startedAt ?? j.createdAt, error: j.error };
}

export function parseListen(listen: string | undefined): { host: string; port: number } {
  if (!listen) return { host: '127.0.0.1', port: DEFAULT_PORT };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen) ?? /^()()(\d{1,5})$/.exec(listen);
  if (!m || Number(m[3]) > 65535) throw new CairnError('BAD_INPUT', `invalid --listen ${JSON.stringify(listen)}: write HOST:PORT, as in 127.0.0.1:${DEFAULT_PORT}`);
  return { host: m[1] || m[2] || '127.0.0.1', port: Number(m[3]) };
}

/** How often the daemon looks for repository caches no job used recently (see Daemon.cleanCache). */
const CACHE_CLEANUP_MS = 24 * 3_600_000;
const CACHE_RETRY_MS = 3_600_000;

export class Daemon {
  readonly dataDir: string;
  readonly config: DaemonConfig;
  readonly catalog: ServiceCatalog;
  readonly runner: JobRunner;
  readonly scheduler: Scheduler;
  readonly watcher: PlanWatcher;
  readonly metrics = new ServiceMetrics();
  readonly log: Logger;
  readonly repository: RepositoryRef;
  readonly token: string;
  readonly startedAt = Date.now();
  #api: FastifyInstance | null = null;
  url = '';
  #stopping: Promise<void> | null = null;
  #cacheCleanup: NodeJS.Timeout | null = null;
  #cacheRetry: NodeJS.Timeout | null = null;

  private constructor(o: { dataDir: string; config: DaemonConfig; catalog: ServiceCatalog; log: Logger; repository: RepositoryRef; token: string }) {
    this.dataDir = o.dataDir;
    this.config = o.config;
    this.catalog = o.catalog;
    this.log = o.log;
    this.repository = o.repository;
    this.token = o.token;
    const log = (level: 'info' | 'warn' | 'error', msg: string, data?: Record<string, unknown>) => this.log[level](data ?? {}, msg);
    this.runner = new JobRunner(this.catalog, {
      concurrency: o.config.concurrency,
      retryBaseMs: o.config.retryBaseMs,
      defaultRepository: o.repository,
      sourceTask: (plan, task, ctx) => (plan.sources.some((s) => s.kind === 'database') ? databaseTask(plan, task, ctx) : exportTask(plan, task, ctx)),
      checkTask: async (plan, job, ctx) => {
        const spec = (job.meta as CheckSpec | null) ?? { readData: plan.check?.readData ?? false };
        return checkPlan(plan, spec, { ...ctx, hadBackup: (await this.catalog.lastJob(plan.name, 'done')) !== null });
      },
      log,
    });
    this.runner.on('finished', (job: JobRecord) => this.metrics.jobFinished(job));
    this.scheduler = new Scheduler((plan, trigger, kind) => void this.#trigger(plan.name, trigger, kind));
    this.watcher = new PlanWatcher(this.catalog, (plan) => void this.#trigger(plan.name, 'watch'), [this.dataDir], (plan, err) => this.log.error({ plan, error: err.message }, 'watcher failed'));
  }

  static async start(opts: DaemonOptions = {}): Promise<Daemon> {
    const { config, plans } = loadConfig(opts.configFile);
    const listen = parseListen(opts.listen ?? config.listen ?? process.env.CAIRN_LISTEN);
    const dataDir = path.resolve(opts.dataDir ?? config.dataDir ?? process.env.CAIRN_DATA_DIR ?? 'cairn-data');
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const log = opts.logger ?? pino({ level: process.env.CAIRN_LOG_LEVEL ?? 'info' }, pino.destination(2));
    const tokenFile = path.join(dataDir, 'api-token');
    if (ensureSecretFile(tokenFile)) log.info({ file: tokenFile }, 'generated an API token');
    const token = readSecretFile(tokenFile, 'API token');
    const passwordFile = path.resolve(config.passwordFile ?? path.join(dataDir, 'repo-password'));
    if (!config.passwordFile && ensureSecretFile(passwordFile)) {
      log.info({ file: passwordFile }, 'generated a repository password (keep a copy: without it the backups cannot be read)');
    }
    // Jobs keep the parsed index of each repository they write to in the data folder (see cache.ts).
    const cache = new LocalCache(path.join(dataDir, 'cache'), (message) => log.warn(message));
    const repository: RepositoryRef = { location: config.repository ?? path.join(dataDir, 'repo'), passwordFile, initIfMissing: true, cache };
    const catalogUrl = opts.catalog ?? config.catalog ?? process.env.CAIRN_CATALOG ?? `sqlite:${path.join(dataDir, 'catalog.db')}`;
    const catalog = await ServiceCatalog.open(catalogUrl);
    const d = new Daemon({ dataDir, config, catalog, log, repository, token });
    try {
      await d.#boot(plans, opts, listen);
    } catch (err) {
      await d.stop();
      throw err;
    }
    return d;
  }

  async #boot(configPlans: Plan[], opts: DaemonOptions, { host, port }: { host: string; port: number }): Promise<void> {
    for (const plan of configPlans) {
      const existing = await this.catalog.getPlan(plan.name);
      // A plan paused through the API stays paused when the config file is read again.
      if (existing) await this.catalog.updatePlan({ ...plan, paused: plan.paused || existing.paused }, true);
      else await this.catalog.insertPlan(plan, true);
    }
    // A plan taken out of the config file goes; plans added through the API stay.
    const fromFile = new Set(configPlans.map((p) => p.name));
    for (const rec of await this.catalog.listPlans()) {
      if (rec.fromConfig && !fromFile.has(rec.plan.name)) await this.catalog.deletePlan(rec.plan.name);
    }
    for (const raw of opts.defaultPlans ?? []) {
      const plan = parsePlan(raw);
      if (!(await this.catalog.getPlan(plan.name))) await this.catalog.insertPlan(plan);
    }
    const resumed = await this.runner.resume();
    const busy = new Set(resumed.map((j) => j.plan));
    for (const rec of await this.catalog.listPlans()) {
      await this.#activate(rec.plan);
      if (rec.paused) continue;
      const lastCheck = await this.catalog.lastJob(rec.plan.name, undefined, 'check');
      if (missedRun(rec.plan, lastCheck ? Date.parse(lastCheck.createdAt) : rec.createdAt, Date.now(), 'check')) await this.#enqueueCheck(rec.plan, 'missed');
      if (busy.has(rec.plan.name)) continue;
      if (rec.plan.watch) {
        // Changes journaled before a crash, and any made while the daemon was down, are picked up
        // by one run that looks at everything.
        await this.runner.enqueue(rec.plan, 'startup');
        continue;
      }
      const last = await this.catalog.lastJob(rec.plan.name);
      if (missedRun(rec.plan, last ? Date.parse(last.createdAt) : rec.createdAt)) await this.runner.enqueue(rec.plan, 'missed');
    }
    this.#api = await buildApi(this);
    try {
      await this.#api.listen({ host, port });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CairnError('BAD_INPUT', `cannot listen on ${host}:${port}: ${code === 'EADDRINUSE' ? 'the address is in use (is another daemon running? choose another with --listen)' : (code ?? (err as Error).message)}`);
    }
    const addr = this.#api.server.address();
    const actual = typeof addr === 'object' && addr ? addr.port : port;
    this.url = `http://${host.includes(':') ? `[${host}]` : host}:${actual}`;
    fs.writeFileSync(path.join(this.dataDir, 'daemon.json'), `${JSON.stringify({ url: this.url, pid: process.pid })}\n`);
    if (this.config.cacheMaxAgeDays > 0) {
      void this.cleanCache();
      this.#cacheCleanup = setInterval(() => void this.cleanCache(), CACHE_CLEANUP_MS);
      this.#cacheCleanup.unref();
    }
    this.log.info({ url: this.url, dataDir: this.dataDir, catalog: this.catalog.safeUrl, repository: this.repository.location }, 'cairn daemon listening');
  }

  async #activate(plan: Plan): Promise<void> {
    this.scheduler.sync(plan);
    try {
      await this.watcher.sync(plan);
    } catch (err) {
      this.log.error({ plan: plan.name, error: (err as Error).message }, 'cannot watch plan');
    }
  }

  async #trigger(name: string, trigger: JobTrigger, kind: JobKind = 'backup'): Promise<void> {
    try {
      const rec = await this.catalog.getPlan(name);
      if (!rec || rec.paused) return;
      if (kind === 'check') await this.#enqueueCheck(rec.plan, trigger);
      else await this.runner.enqueue(rec.plan, trigger);
    } catch (err) {
      if (!this.#stopping) this.log.error({ plan: name, error: (err as Error).message }, 'cannot start job');
    }
  }

  // Plans, as the API and CLI change them.

  async addPlan(input: unknown): Promise<PlanRecord> {
    const plan = parsePlan(input);
    checkPlanPaths(plan);
    const rec = await this.catalog.insertPlan(plan);
    await this.#activate(rec.plan);
    if (rec.plan.watch && !rec.paused) await this.runner.enqueue(rec.plan, 'startup');
    return rec;
  }

  async replacePlan(name: string, input: unknown): Promise<PlanRecord> {
    const body = input && typeof input === 'object' ? { ...(input as Record<string, unknown>) } : input;
    if (body && typeof body === 'object') {
      const b = body as Record<string, unknown>;
      if (b.name !== undefined && b.name !== name) throw new CairnError('BAD_INPUT', `the plan's name (${String(b.name)}) differs from the name in the URL (${name}); a plan cannot be renamed`);
      b.name = name;
    }
    const plan = parsePlan(body);
    checkPlanPaths(plan);
    const rec = await this.catalog.updatePlan(plan);
    await this.#activate(rec.plan);
    return rec;
  }

  async removePlan(name: string): Promise<void> {
    this.scheduler.remove(name);
    await this.watcher.remove(name);
    if (!(await this.catalog.deletePlan(name))) throw new CairnError('NOT_FOUND', `no plan named ${name}`);
    this.metrics.forgetPlan(name);
  }

  async setPaused(name: string, paused: boolean): Promise<PlanRecord> {
    const rec = await this.catalog.setPaused(name, paused);
    await this.#activate(rec.plan);
    return rec;
  }

  async runPlan(name: string, trigger: JobTrigger = 'manual'): Promise<JobRecord> {
    const rec = await this.catalog.getPlan(name);
    if (!rec) throw new CairnError('NOT_FOUND', `no plan named ${name}`);
    return this.runner.enqueue(rec.plan, trigger);
  }

  /**
   * Queues a check of a plan's repository; `readData` as the plan's `check.readData`, in place of
   * it (without, the plan's own, or the structure alone when the plan has no checks).
   */
  async runCheck(name: string, trigger: JobTrigger = 'manual', readData?: CheckOptions['readData']): Promise<JobRecord> {
    const rec = await this.catalog.getPlan(name);
    if (!rec) throw new CairnError('NOT_FOUND', `no plan named ${name}`);
    if (rec.plan.target.kind !== 'repository') throw new CairnError('BAD_INPUT', `plan ${name} writes to an ${rec.plan.target.kind} target, which has no repository to check`);
    if (readData !== undefined) parseCheckReadData(readData);
    return this.#enqueueCheck(rec.plan, trigger, readData);
  }

  /** A check job waiting for its turn is shared, unless this one reads other data. */
  async #enqueueCheck(plan: Plan, trigger: JobTrigger, readData?: CheckOptions['readData']): Promise<JobRecord> {
    const earlier = await this.catalog.listJobs({ plan: plan.name, kind: 'check', limit: 50 });
    const spec = nextCheckSpec(plan, earlier, readData);
    return this.runner.enqueue(plan, trigger, { kind: 'check', meta: { ...spec }, alone: readData !== undefined });
  }

  /** Runs a plan that is not stored (an ad-hoc job). */
  async runAdhoc(input: unknown, trigger: JobTrigger = 'api', meta: Record<string, unknown> = {}): Promise<JobRecord> {
    const plan = parsePlan(input);
    checkPlanPaths(plan);
    return this.runner.enqueue(plan, trigger, { meta: { ...meta, plan } });
  }

  async planStatus(rec: PlanRecord, pending?: Map<string, number>): Promise<PlanStatus> {
    const plan = rec.plan;
    const last = await this.catalog.lastJob(plan.name);
    const ok = last?.state === 'done' ? last : await this.catalog.lastJob(plan.name, 'done');
    const lastSuccess = ok?.finishedAt ?? null;
    const behind = isBehind(plan, lastSuccess ? Date.parse(lastSuccess) : null, rec.createdAt);
    this.metrics.behind.set({ plan: plan.name }, behind ? 1 : 0);
    const usage = await targetUsage(plan.target, this.repository);
    return {
      name: plan.name,
      paused: rec.paused,
      fromConfig: rec.fromConfig,
      running: this.runner.isPlanBusy(plan.name),
      lastSuccess,
      lastRun: last ? runOf(last) : null,
      nextRun: this.scheduler.nextRun(plan.name)?.toISOString() ?? null,
      pendingChanges: (pending ?? (await this.catalog.journalCounts())).get(plan.name) ?? 0,
      behind,
      target: { kind: plan.target.kind, ...usage },
      check: await this.#checkStatus(plan),
    };
  }

  async #checkStatus(plan: Plan): Promise<CheckStatus | null> {
    const recent = await this.catalog.listJobs({ plan: plan.name, kind: 'check', limit: 20 });
    const last = recent[0] ?? null;
    if (!plan.check && !last) return null;
    const ok = recent.find((j) => j.state === 'done') ?? (await this.catalog.lastJob(plan.name, 'done', 'check'));
    // What the last check that ended found, while the next one runs.
    const finished = recent.find((j) => j.state === 'done' || j.state === 'failed') ?? null;
    const problems = finished ? (finished.state === 'done' ? 0 : ((finished.tasks[0]?.result as { problems?: number } | null)?.problems ?? null)) : null;
    return {
      schedule: plan.check?.schedule ?? null,
      nextRun: this.scheduler.nextRun(plan.name, 'check')?.toISOString() ?? null,
      lastRun: last ? runOf(last) : null,
      lastSuccess: ok?.finishedAt ?? null,
      problems,
    };
  }

  /**
   * Removes the repository caches in DATA_DIR/cache that no job used for `cacheMaxAgeDays` (as
   * `cairn cache --cleanup` does): a repository no plan writes to any more leaves one behind. At
   * start and once a day, and not while a job runs: a job marks its repository's cache as used
   * when it is done, so a cache that a long job began to use again may still look old. Never
   * fails; a problem is logged.
   */
  async cleanCache(): Promise<string[]> {
    const cache = this.repository.cache;
    if (!cache || this.config.cacheMaxAgeDays === 0 || this.#stopping) return [];
    if (this.runner.runningJobs().length > 0) {
      // Another try within the hour rather than a day later (one pending try at most).
      this.#cacheRetry ??= setTimeout(() => {
        this.#cacheRetry = null;
        void this.cleanCache();
      }, CACHE_RETRY_MS).unref();
      return [];
    }
    try {
      const removed = (await cache.removeOld(this.config.cacheMaxAgeDays)).map((c) => c.id);
      if (removed.length > 0) this.log.info({ removed, maxAgeDays: this.config.cacheMaxAgeDays }, 'removed repository caches no job used recently');
      return removed;
    } catch (err) {
      this.log.warn({ dir: cache.dir, error: (err as Error).message }, 'cannot clean up the cache');
      return [];
    }
  }

  /** Stops taking work, lets running jobs finish within the grace period, records state, closes. Safe to call twice. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (this.#cacheCleanup) clearInterval(this.#cacheCleanup);
      if (this.#cacheRetry) clearTimeout(this.#cacheRetry);
      this.scheduler.stop();
      await this.watcher.stop();
      await this.runner.stop(this.config.shutdownGraceSeconds * 1000);
      await this.#api?.close();
      await this.catalog.close();
      fs.rmSync(path.join(this.dataDir, 'daemon.json'), { force: true });
      this.log.info('cairn daemon stopped');
    })();
    return this.#stopping;
  }
}
