/**
 * The service's tables in the catalog (plans, jobs, tasks, job events, the watch journal and the
 * retry list) and the queries the daemon makes. One schema for SQLite, MariaDB and PostgreSQL:
 * ids are random strings, times are milliseconds since the epoch, JSON is stored as text.
 */
import { randomBytes } from 'node:crypto';
import type { Kysely, Migration } from 'kysely';
import { CairnError } from '../errors.js';
import { migrateComponent, openCatalogDatabase, type CatalogDatabase } from '../catalog/database.js';
import type { Plan } from './config.js';

export type JobState = 'pending' | 'running' | 'done' | 'failed' | 'cancelled';
export const JOB_STATES: JobState[] = ['pending', 'running', 'done', 'failed', 'cancelled'];
export type JobTrigger = 'schedule' | 'watch' | 'manual' | 'missed' | 'startup' | 'api' | 'export';
/** What a job does: back a plan's sources up, or check the plan's repository. */
export type JobKind = 'backup' | 'check';
export const JOB_KINDS: JobKind[] = ['backup', 'check'];

interface PlanRow {
  name: string;
  spec: string;
  paused: number;
  from_config: number;
  created_at: number;
  updated_at: number;
}
interface JobRow {
  id: string;
  plan: string | null;
  kind: string;
  trigger: string;
  state: string;
  attempts: number;
  error: string | null;
  files: number;
  bytes: number;
  changed_paths: string | null;
  result: string | null;
  meta: string | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
}
interface TaskRow {
  id: string;
  job_id: string;
  seq: number;
  name: string;
  state: string;
  attempts: number;
  error: string | null;
  files: number;
  bytes: number;
  result: string | null;
  started_at: number | null;
  finished_at: number | null;
}
interface EventRow {
  job_id: string;
  seq: number;
  at: number;
  type: string;
  data: string;
}
interface JournalRow {
  id: string;
  plan: string;
  path: string;
  at: number;
}
interface RetryRow {
  id: string;
  plan: string;
  item: string;
  error: string;
  attempts: number;
  at: number;
}
export interface ServiceTables {
  service_plans: PlanRow;
  service_jobs: JobRow;
  service_tasks: TaskRow;
  service_job_events: EventRow;
  service_watch_journal: JournalRow;
  service_retry_list: RetryRow;
}

const migrations: Record<string, Migration> = {
  '001_service': {
    async up(db: Kysely<unknown>) {
      const ms = 'bigint' as const;
      await db.schema
        .createTable('service_plans')
        .addColumn('name', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('from_config', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', ms, (c) => c.notNull())
        .addColumn('updated_at', ms, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('service_jobs')
        .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('plan', 'varchar(64)')
        .addColumn('trigger', 'varchar(16)', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('error', 'text')
        .addColumn('files', ms, (c) => c.notNull().defaultTo(0))
        .addColumn('bytes', ms, (c) => c.notNull().defaultTo(0))
        .addColumn('changed_paths', 'text')
        .addColumn('result', 'text')
        .addColumn('meta', 'text')
        .addColumn('created_at', ms, (c) => c.notNull())
        .addColumn('started_at', ms)
        .addColumn('finished_at', ms)
        .execute();
      await db.schema.createIndex('service_jobs_plan').on('service_jobs').columns(['plan', 'created_at']).execute();
      await db.schema.createIndex('service_jobs_state').on('service_jobs').columns(['state']).execute();
      await db.schema
        .createTable('service_tasks')
        .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('job_id', 'varchar(32)', (c) => c.notNull().references('service_jobs.id').onDelete('cascade'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('name', 'varchar(128)', (c) => c.notNull())
        .addColumn('state', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('error', 'text')
        .addColumn('files', ms, (c) => c.notNull().defaultTo(0))
        .addColumn('bytes', ms, (c) => c.notNull().defaultTo(0))
        .addColumn('result', 'text')
        .addColumn('started_at', ms)
        .addColumn('finished_at', ms)
        .execute();
      await db.schema.createIndex('service_tasks_job').on('service_tasks').columns(['job_id', 'seq']).execute();
      await db.schema
        .createTable('service_job_events')
        .addColumn('job_id', 'varchar(32)', (c) => c.notNull().references('service_jobs.id').onDelete('cascade'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('at', ms, (c) => c.notNull())
        .addColumn('type', 'varchar(16)', (c) => c.notNull())
        .addColumn('data', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('service_job_events_pk', ['job_id', 'seq'])
        .execute();
      await db.schema
        .createTable('service_watch_journal')
        .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('plan', 'varchar(64)', (c) => c.notNull())
        .addColumn('path', 'text', (c) => c.notNull())
        .addColumn('at', ms, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('service_watch_journal_plan').on('service_watch_journal').columns(['plan', 'at']).execute();
      await db.schema
        .createTable('service_retry_list')
        .addColumn('id', 'varchar(32)', (c) => c.primaryKey())
        .addColumn('plan', 'varchar(64)', (c) => c.notNull())
        .addColumn('item', 'text', (c) => c.notNull())
        .addColumn('error', 'text', (c) => c.notNull())
        .addColumn('attempts', 'integer', (c) => c.notNull())
        .addColumn('at', ms, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('service_retry_list_plan').on('service_retry_list').columns(['plan']).execute();
    },
  },
  '002_job_kind': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('service_jobs').addColumn('kind', 'varchar(16)', (c) => c.notNull().defaultTo('backup')).execute();
    },
  },
};

let idSeq = 0;

/** A unique id that sorts in creation order within a process: milliseconds and a counter in base 36, then randomness. */
export function newId(prefix: string): string {
  idSeq = (idSeq + 1) % 1296;
  return `${prefix}${Date.now().toString(36).padStart(9, '0')}${idSeq.toString(36).padStart(2, '0')}${randomBytes(4).toString('hex')}`;
}

const num = (v: unknown): number => Number(v ?? 0);
const iso = (v: unknown): string | null => (v === null || v === undefined ? null : new Date(Number(v)).toISOString());
const json = <T>(v: string | null): T | null => (v === null ? null : (JSON.parse(v) as T));

export interface PlanRecord {
  plan: Plan;
  paused: boolean;
  fromConfig: boolean;
  createdAt: number;
  updatedAt: number;
}

export interface TaskRecord {
  id: string;
  name: string;
  state: JobState;
  attempts: number;
  error: string | null;
  files: number;
  bytes: number;
  result: unknown;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface JobRecord {
  id: string;
  plan: string | null;
  kind: JobKind;
  trigger: JobTrigger;
  state: JobState;
  attempts: number;
  error: string | null;
  files: number;
  bytes: number;
  /** Paths the watcher saw change (and retried items), handed to the target as a hint. */
  changedPaths: string[] | null;
  result: unknown;
  /** What an ad-hoc or export job runs (its own plan), and request details. */
  meta: Record<string, unknown> | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  tasks: TaskRecord[];
}

export interface JobEvent {
  seq: number;
  at: string;
  type: 'state' | 'progress' | 'task' | 'log';
  data: Record<string, unknown>;
}

export interface JobFilter {
  plan?: string;
  kind?: JobKind;
  state?: JobState;
  since?: number;
  limit?: number;
}

/** The service's catalog: every method is one or a few statements, so any of them may be interrupted. */
export class ServiceCatalog {
  readonly #cat: CatalogDatabase<ServiceTables>;
  readonly db: Kysely<ServiceTables>;

  private constructor(cat: CatalogDatabase<ServiceTables>) {
    this.#cat = cat;
    this.db = cat.db;
  }

  static async open(url: string): Promise<ServiceCatalog> {
    const cat = await openCatalogDatabase<ServiceTables>(url);
    try {
      await migrateComponent(cat.db, 'service', migrations);
    } catch (err) {
      await cat.close();
      throw err;
    }
    return new ServiceCatalog(cat);
  }

  get dialect(): string {
    return this.#cat.dialect;
  }

  get safeUrl(): string {
    return this.#cat.safeUrl;
  }

  close(): Promise<void> {
    return this.#cat.close();
  }

  // Plans

  async listPlans(): Promise<PlanRecord[]> {
    const rows = await this.db.selectFrom('service_plans').selectAll().orderBy('name').execute();
    return rows.map(planRecord);
  }

  async getPlan(name: string): Promise<PlanRecord | null> {
    const row = await this.db.selectFrom('service_plans').selectAll().where('name', '=', name).executeTakeFirst();
    return row ? planRecord(row) : null;
  }

  async insertPlan(plan: Plan, fromConfig = false): Promise<PlanRecord> {
    const now = Date.now();
    if (await this.getPlan(plan.name)) throw new CairnError('CONFLICT', `plan ${plan.name} already exists: change it with PUT, or remove it first`);
    await this.db
      .insertInto('service_plans')
      .values({ name: plan.name, spec: JSON.stringify(plan), paused: plan.paused ? 1 : 0, from_config: fromConfig ? 1 : 0, created_at: now, updated_at: now })
      .execute();
    return (await this.getPlan(plan.name))!;
  }

  async updatePlan(plan: Plan, fromConfig = false): Promise<PlanRecord> {
    const r = await this.db
      .updateTable('service_plans')
      .set({ spec: JSON.stringify(plan), paused: plan.paused ? 1 : 0, from_config: fromConfig ? 1 : 0, updated_at: Date.now() })
      .where('name', '=', plan.name)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 0) throw new CairnError('NOT_FOUND', `no plan named ${plan.name}`);
    return (await this.getPlan(plan.name))!;
  }

  async setPaused(name: string, paused: boolean): Promise<PlanRecord> {
    const rec = await this.getPlan(name);
    if (!rec) throw new CairnError('NOT_FOUND', `no plan named ${name}`);
    return this.updatePlan({ ...rec.plan, paused }, rec.fromConfig);
  }

  async deletePlan(name: string): Promise<boolean> {
    const r = await this.db.deleteFrom('service_plans').where('name', '=', name).executeTakeFirst();
    await this.db.deleteFrom('service_watch_journal').where('plan', '=', name).execute();
    await this.db.deleteFrom('service_retry_list').where('plan', '=', name).execute();
    return Number(r.numDeletedRows) > 0;
  }

  // Jobs and tasks

  async createJob(j: { plan: string | null; kind?: JobKind; trigger: JobTrigger; tasks: string[]; changedPaths?: string[] | null; meta?: Record<string, unknown> | null }): Promise<JobRecord> {
    const id = newId('j');
    const now = Date.now();
    await this.db.transaction().execute(async (tx) => {
      await tx
        .insertInto('service_jobs')
        .values({ id, plan: j.plan, kind: j.kind ?? 'backup', trigger: j.trigger, state: 'pending', attempts: 0, error: null, files: 0, bytes: 0, changed_paths: j.changedPaths ? JSON.stringify(j.changedPaths) : null, result: null, meta: j.meta ? JSON.stringify(j.meta) : null, created_at: now, started_at: null, finished_at: null })
        .execute();
      let seq = 0;
      for (const name of j.tasks) {
        await tx
          .insertInto('service_tasks')
          .values({ id: newId('t'), job_id: id, seq: seq++, name, state: 'pending', attempts: 0, error: null, files: 0, bytes: 0, result: null, started_at: null, finished_at: null })
          .execute();
      }
    });
    return (await this.getJob(id))!;
  }

  async getJob(id: string): Promise<JobRecord | null> {
    const row = await this.db.selectFrom('service_jobs').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) return null;
    const tasks = await this.db.selectFrom('service_tasks').selectAll().where('job_id', '=', id).orderBy('seq').execute();
    return jobRecord(row, tasks);
  }

  async listJobs(f: JobFilter = {}): Promise<JobRecord[]> {
    let q = this.db.selectFrom('service_jobs').selectAll();
    if (f.plan !== undefined) q = q.where('plan', '=', f.plan);
    if (f.kind !== undefined) q = q.where('kind', '=', f.kind);
    if (f.state !== undefined) q = q.where('state', '=', f.state);
    if (f.since !== undefined) q = q.where('created_at', '>=', f.since);
    const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit ?? 100).execute();
    if (rows.length === 0) return [];
    const tasks = await this.db.selectFrom('service_tasks').selectAll().where('job_id', 'in', rows.map((r) => r.id)).orderBy('seq').execute();
    return rows.map((r) => jobRecord(r, tasks.filter((t) => t.job_id === r.id)));
  }

  /** Jobs that were pending or running when the daemon stopped, oldest first. */
  async unfinishedJobs(): Promise<JobRecord[]> {
    const rows = await this.db.selectFrom('service_jobs').select('id').where('state', 'in', ['pending', 'running']).orderBy('created_at').execute();
    const out: JobRecord[] = [];
    for (const r of rows) out.push((await this.getJob(r.id))!);
    return out;
  }

  async updateJob(id: string, set: RunUpdate & { changedPaths?: string[] | null }): Promise<void> {
    const changed = set.changedPaths !== undefined ? { changed_paths: set.changedPaths ? JSON.stringify(set.changedPaths) : null } : {};
    await this.db.updateTable('service_jobs').set({ ...runColumns(set), ...changed }).where('id', '=', id).execute();
  }

  async updateTask(id: string, set: RunUpdate): Promise<void> {
    await this.db.updateTable('service_tasks').set(runColumns(set)).where('id', '=', id).execute();
  }

  /** The newest job of a plan of a kind (backups unless told), in a state when given, or null. */
  async lastJob(plan: string, state?: JobState, kind: JobKind = 'backup'): Promise<JobRecord | null> {
    let q = this.db.selectFrom('service_jobs').select('id').where('plan', '=', plan).where('kind', '=', kind);
    if (state) q = q.where('state', '=', state);
    const row = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(1).executeTakeFirst();
    return row ? this.getJob(row.id) : null;
  }

  // Events

  async addEvent(jobId: string, type: JobEvent['type'], data: Record<string, unknown>): Promise<JobEvent> {
    const last = await this.db.selectFrom('service_job_events').select((eb) => eb.fn.max('seq').as('seq')).where('job_id', '=', jobId).executeTakeFirst();
    const seq = num(last?.seq) + 1;
    const at = Date.now();
    await this.db.insertInto('service_job_events').values({ job_id: jobId, seq, at, type, data: JSON.stringify(data) }).execute();
    return { seq, at: new Date(at).toISOString(), type, data };
  }

  async listEvents(jobId: string, afterSeq = 0): Promise<JobEvent[]> {
    const rows = await this.db.selectFrom('service_job_events').selectAll().where('job_id', '=', jobId).where('seq', '>', afterSeq).orderBy('seq').execute();
    return rows.map((r) => ({ seq: num(r.seq), at: iso(r.at)!, type: r.type as JobEvent['type'], data: JSON.parse(r.data) as Record<string, unknown> }));
  }

  // Watch journal

  /** Records changed paths of a watched plan; the first thing done with a change. */
  async journal(plan: string, paths: string[]): Promise<void> {
    if (paths.length === 0) return;
    const at = Date.now();
    await this.db.insertInto('service_watch_journal').values(paths.map((p) => ({ id: newId('w'), plan, path: p, at }))).execute();
  }

  async journalEntries(plan: string): Promise<{ ids: string[]; paths: string[] }> {
    const rows = await this.db.selectFrom('service_watch_journal').select(['id', 'path']).where('plan', '=', plan).orderBy('id').execute();
    return { ids: rows.map((r) => r.id), paths: [...new Set(rows.map((r) => r.path))] };
  }

  async journalCounts(): Promise<Map<string, number>> {
    const rows = await this.db.selectFrom('service_watch_journal').select(['plan', (eb) => eb.fn.countAll().as('n')]).groupBy('plan').execute();
    return new Map(rows.map((r) => [r.plan, num(r.n)]));
  }

  async clearJournal(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) await this.db.deleteFrom('service_watch_journal').where('id', 'in', ids.slice(i, i + 500)).execute();
  }

  // Retry list

  async addRetry(plan: string, items: string[], error: string, attempts: number): Promise<void> {
    if (items.length === 0) return;
    const at = Date.now();
    await this.db.insertInto('service_retry_list').values(items.map((item) => ({ id: newId('r'), plan, item, error, attempts, at }))).execute();
  }

  async retryItems(plan: string): Promise<{ ids: string[]; items: string[] }> {
    const rows = await this.db.selectFrom('service_retry_list').select(['id', 'item']).where('plan', '=', plan).orderBy('id').execute();
    return { ids: rows.map((r) => r.id), items: [...new Set(rows.map((r) => r.item))] };
  }

  async listRetries(): Promise<{ plan: string; item: string; error: string; attempts: number; at: string }[]> {
    const rows = await this.db.selectFrom('service_retry_list').selectAll().orderBy('at').execute();
    return rows.map((r) => ({ plan: r.plan, item: r.item, error: r.error, attempts: num(r.attempts), at: iso(r.at)! }));
  }

  async clearRetries(ids: string[]): Promise<void> {
    for (let i = 0; i < ids.length; i += 500) await this.db.deleteFrom('service_retry_list').where('id', 'in', ids.slice(i, i + 500)).execute();
  }
}

/** What a job and a task have in common, as they change while running. */
export type RunUpdate = Partial<{ state: JobState; attempts: number; error: string | null; files: number; bytes: number; result: unknown; startedAt: number | null; finishedAt: number | null }>;

function runColumns(set: RunUpdate) {
  return {
    ...(set.state !== undefined && { state: set.state }),
    ...(set.attempts !== undefined && { attempts: set.attempts }),
    ...(set.error !== undefined && { error: set.error }),
    ...(set.files !== undefined && { files: set.files }),
    ...(set.bytes !== undefined && { bytes: set.bytes }),
    ...(set.result !== undefined && { result: JSON.stringify(set.result) }),
    ...(set.startedAt !== undefined && { started_at: set.startedAt }),
    ...(set.finishedAt !== undefined && { finished_at: set.finishedAt }),
  };
}

function planRecord(r: PlanRow): PlanRecord {
  const plan = JSON.parse(r.spec) as Plan;
  plan.paused = num(r.paused) === 1;
  return { plan, paused: plan.paused, fromConfig: num(r.from_config) === 1, createdAt: num(r.created_at), updatedAt: num(r.updated_at) };
}

function taskRecord(t: TaskRow): TaskRecord {
  return {
    id: t.id,
    name: t.name,
    state: t.state as JobState,
    attempts: num(t.attempts),
    error: t.error,
    files: num(t.files),
    bytes: num(t.bytes),
    result: json(t.result),
    startedAt: iso(t.started_at),
    finishedAt: iso(t.finished_at),
  };
}

function jobRecord(r: JobRow, tasks: TaskRow[]): JobRecord {
  return {
    id: r.id,
    plan: r.plan,
    kind: r.kind as JobKind,
    trigger: r.trigger as JobTrigger,
    state: r.state as JobState,
    attempts: num(r.attempts),
    error: r.error,
    files: num(r.files),
    bytes: num(r.bytes),
    changedPaths: json<string[]>(r.changed_paths),
    result: json(r.result),
    meta: json<Record<string, unknown>>(r.meta),
    createdAt: iso(r.created_at)!,
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
    tasks: tasks.map(taskRecord),
  };
}
