/**
 * The daemon's configuration and the shape of a plan, as zod schemas: one schema per shape, used
 * for the config file (`cairn.yaml` or JSON), for the API and for the catalog. A config file may
 * refer to the environment as `${NAME}` (or `${NAME:-default}`); a `.env` file beside it is read
 * first and never overrides variables already set.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Cron } from 'croner';
import dotenv from 'dotenv';
import YAML from 'yaml';
import { z } from 'zod';
import { parseDbUrl } from '../sources/db/url.js';
import { CairnError } from '../errors.js';
import { openBackend } from '../backend/location.js';
import { parseDuration, type Policy } from '../maintenance/forget.js';
import { parseMaxUnused } from '../maintenance/prune.js';
import { parseTagRule } from '../archiver/excludes.js';
import { parseSize } from '../util/size.js';
import { parseCheckReadData } from '../maintenance/check.js';

/** The API's port unless told otherwise. */
export const DEFAULT_PORT = 8470;

export const PLAN_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Validates a cron expression of 5 or 6 fields (seconds first) in an optional time zone. */
export function checkCron(expr: string, timezone?: string): string | null {
  const fields = expr.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) return `invalid cron expression ${JSON.stringify(expr)}: it has ${fields} fields, a schedule has 5 (minute hour day month weekday) or 6 (seconds first)`;
  try {
    new Cron(expr, { paused: true, timezone }).stop();
  } catch (err) {
    return `invalid cron expression ${JSON.stringify(expr)}: ${(err as Error).message}`;
  }
  return null;
}

function durationError(s: string): string | null {
  try {
    parseDuration(s);
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const Duration = z.string().refine((s) => durationError(s) === null, { message: 'a duration is written like 1h, 7d, 6m (months) or 1y2m3d4h' });

const Codec = z.enum(['gzip', 'zlib', 'brotli', 'zstd', 'zip']);
const KeepAgeCount = z.strictObject({ age: Duration.optional(), count: z.number().int().positive().optional() });

export const RepositoryTarget = z.strictObject({
  kind: z.literal('repository'),
  /** A repository location as restic writes it; the daemon's own repository when left out. */
  repository: z.string().min(1).optional(),
  /** Password file for `repository`; the daemon's repository password when left out. */
  passwordFile: z.string().min(1).optional(),
});
export type RepositoryTarget = z.output<typeof RepositoryTarget>;
export const ArchiveTarget = z.strictObject({ kind: z.literal('archive'), dest: z.string().min(1), codec: Codec.default('zstd'), keep: KeepAgeCount.optional() });
export const MirrorTarget = z.strictObject({ kind: z.literal('mirror'), dest: z.string().min(1), trash: z.strictObject({ keep: KeepAgeCount.optional() }).optional() });
export const TargetObject = z.discriminatedUnion('kind', [RepositoryTarget, ArchiveTarget, MirrorTarget]);
export type Target = z.output<typeof TargetObject>;

/** A folder or an S3 location (`s3:…`) for archive and mirror targets. */
function destError(dest: string): string | null {
  if (dest.startsWith('s3:')) return dest.length > 3 ? null : 's3: needs a bucket, as in s3:http://host:9000/bucket/prefix';
  if (/^[a-z][a-z0-9+.-]*:/i.test(dest) && !dest.startsWith('local:')) return `unknown destination ${JSON.stringify(dest.split(':')[0] + ':')}: use a folder or s3:…`;
  return null;
}

/**
 * Parses a target as the CLI writes it: `archive:DIR` or `archive:s3:…`, `mirror:DIR` or
 * `mirror:s3:…`, or a repository location (`/srv/repo`, `local:…`, `s3:…`, `rest:…`).
 */
export function parseTargetSpec(spec: string): Target {
  if (spec === '' || spec === 'repository' || spec === 'default') return { kind: 'repository' };
  const m = /^(archive|mirror)(?:\+([a-z0-9]+))?:(.*)$/.exec(spec);
  if (m) {
    const dest = m[3];
    if (dest === '') throw new CairnError('BAD_INPUT', `target ${m[1]}: needs a destination, as in ${m[1]}:/srv/copies or ${m[1]}:s3:http://host:9000/bucket/prefix`);
    if (m[1] === 'archive') {
      const codec = Codec.safeParse(m[2] ?? 'zstd');
      if (!codec.success) throw new CairnError('BAD_INPUT', `unknown archive codec ${JSON.stringify(m[2])}: use gzip, zlib, brotli, zstd or zip (archive+gzip:DIR)`);
      return { kind: 'archive', dest, codec: codec.data };
    }
    if (m[2]) throw new CairnError('BAD_INPUT', 'a mirror target takes no codec');
    return { kind: 'mirror', dest };
  }
  return { kind: 'repository', repository: spec };
}

/** Checks that a target names something Cairn can write to; returns the problem, or null. */
export function targetError(t: Target): string | null {
  if (t.kind === 'repository') {
    if (!t.repository) return null;
    try {
      openBackend(t.repository);
      return null;
    } catch (err) {
      return `unknown target: ${(err as Error).message}; other targets are archive:DIR and mirror:URL`;
    }
  }
  const e = destError(t.dest);
  return e ? `unknown target: ${e}` : null;
}

const Target = z.union([z.string(), TargetObject]).transform((v, ctx) => {
  let t: Target;
  try {
    t = typeof v === 'string' ? parseTargetSpec(v) : v;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
  const e = targetError(t);
  if (e) {
    ctx.addIssue({ code: 'custom', message: e });
    return z.NEVER;
  }
  return t;
});

const Count = z.union([z.number().int().min(-1), z.literal('unlimited')]).transform((v) => (v === 'unlimited' ? -1 : v));
const PolicyObject = z.strictObject({
  last: Count.optional(),
  hourly: Count.optional(),
  daily: Count.optional(),
  weekly: Count.optional(),
  monthly: Count.optional(),
  yearly: Count.optional(),
  within: Duration.optional(),
  withinHourly: Duration.optional(),
  withinDaily: Duration.optional(),
  withinWeekly: Duration.optional(),
  withinMonthly: Duration.optional(),
  withinYearly: Duration.optional(),
  tags: z.array(z.array(z.string())).optional(),
});
/** Retention: restic's forget policy, or a shorthand age (`7d`: keep what is younger than seven days). */
export const Retention = z.union([Duration, PolicyObject]);
export type Retention = z.output<typeof Retention>;

/** The retention as a forget policy. */
export function retentionPolicy(r: Retention): Policy {
  if (typeof r === 'string') return { within: parseDuration(r) };
  const d = (s: string | undefined) => (s === undefined ? undefined : parseDuration(s));
  return {
    last: r.last,
    hourly: r.hourly,
    daily: r.daily,
    weekly: r.weekly,
    monthly: r.monthly,
    yearly: r.yearly,
    within: d(r.within),
    withinHourly: d(r.withinHourly),
    withinDaily: d(r.withinDaily),
    withinWeekly: d(r.withinWeekly),
    withinMonthly: d(r.withinMonthly),
    withinYearly: d(r.withinYearly),
    tags: r.tags,
  };
}

export const PathSource = z.strictObject({
  kind: z.literal('path').default('path'),
  path: z.string().min(1),
  excludes: z.array(z.string()).optional(),
  /** backup's --exclude-caches, --exclude-if-present and --exclude-larger-than (repository targets). */
  excludeCaches: z.boolean().optional(),
  excludeIfPresent: z.array(z.string()).optional(),
  excludeLargerThan: z.union([z.string(), z.number().int().positive()]).optional(),
});
export const HttpEndpoint = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/),
  url: z.url({ protocol: /^https?$/ }),
  method: z.enum(['GET', 'POST']).default('GET'),
  headers: z.record(z.string(), z.string()).optional(),
  /** Bytes at most; a longer response fails the task. */
  maxBytes: z.number().int().positive().optional(),
});
export const HttpSource = z.strictObject({ kind: z.literal('http'), endpoints: z.array(HttpEndpoint).min(1) });
export const DatabaseSource = z.strictObject({
  kind: z.literal('database'),
  /** `mysql://user@host:port/name`, `postgres://…[?format=custom]` or `sqlite:/path`; a password belongs in `passwordFile`. */
  url: z.string().min(1),
  passwordFile: z.string().min(1).optional(),
  /**
   * A restore drill after each backup: the dump is loaded into a scratch database (on the same server
   * unless `scratch` names another), its tables and rows counted, and the scratch database dropped.
   */
  verify: z.union([z.boolean(), z.strictObject({ scratch: z.string().min(1).optional() })]).optional(),
});
export const Source = z.union([PathSource, HttpSource, DatabaseSource]);
export type DatabaseSource = z.output<typeof DatabaseSource>;

/** A database source's task name: engine and database (`mysql:shop`). */
export function databaseTaskName(s: DatabaseSource): string {
  const loc = parseDbUrl(s.url);
  return `${loc.engine}:${loc.database}`;
}
export type Source = z.output<typeof Source>;
export type PathSource = z.output<typeof PathSource>;

const HookList = z.union([z.string(), z.array(z.string())]).transform((v) => (typeof v === 'string' ? [v] : v));
export const Hooks = z.strictObject({
  before: HookList.optional(),
  after: HookList.optional(),
  timeoutSeconds: z.number().positive().max(86_400).default(300),
});

export const Notify = z.strictObject({
  webhook: z.url({ protocol: /^https?$/ }),
  onSuccess: z.boolean().default(false),
  onFailure: z.boolean().default(true),
});

export const WatchOptions = z.strictObject({
  /** Quiet time after the last change before a backup starts. */
  debounceMs: z.number().int().min(0).max(600_000).default(1000),
  /** A change is backed up within this time even while changes keep coming. */
  maxDelayMs: z.number().int().min(0).max(86_400_000).default(10_000),
});

/**
 * Integrity checks of a plan's repository on a schedule of their own (restic's check): the
 * index, every pack's header, every snapshot's trees; with `readData`, pack contents too: `true`
 * for every pack, restic's --read-data-subset (`10%`, `500M`, `n/t`), or `next/t` for the next of
 * t groups at each run, so that t runs read every pack once.
 */
export const CheckOptions = z.strictObject({
  schedule: z.string(),
  readData: z.union([z.boolean(), z.string().min(1)]).default(false),
});
export type CheckOptions = z.output<typeof CheckOptions>;

/** A plan as written in a config file or sent to the API. */
export const PlanInput = z
  .strictObject({
    name: z.string().regex(PLAN_NAME, 'a plan name is 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit'),
    sources: z.array(Source).min(1, 'a plan needs at least one source'),
    target: Target.default({ kind: 'repository' }),
    schedule: z.string().optional(),
    timezone: z.string().optional(),
    watch: z.union([z.boolean(), WatchOptions]).optional(),
    /** A run missed while the daemon was down runs once at start. */
    catchUp: z.boolean().default(true),
    /** Random delay of up to this many seconds before a scheduled run. */
    jitterSeconds: z.number().min(0).max(86_400).default(0),
    retention: Retention.optional(),
    /**
     * After retention removed snapshots, prune the repository (under an exclusive lock), so space is
     * given back without a separate job; `{maxUnused}` as `cairn prune --max-unused` (default 5%).
     */
    prune: z.union([z.boolean(), z.strictObject({ maxUnused: z.string().min(1).optional() })]).optional(),
    compression: z.enum(['auto', 'off', 'max']).optional(),
    /**
     * `cairn backup`'s --one-file-system, --ignore-inode (which implies ignoreCtime), --ignore-ctime
     * and --with-atime, for the plan's whole walk (repository targets): a mount point below a source
     * stays an empty folder; a file whose size and mtime match the last snapshot is not read again
     * even when its inode (network and FUSE file systems renumber them) or ctime changed; access
     * times are stored.
     */
    oneFileSystem: z.boolean().optional(),
    /** `cairn backup --skip-if-unchanged`: a run that finds the tree of the plan's last snapshot saves none. */
    skipIfUnchanged: z.boolean().optional(),
    ignoreInode: z.boolean().optional(),
    ignoreCtime: z.boolean().optional(),
    withAtime: z.boolean().optional(),
    tags: z.array(z.string().min(1)).optional(),
    /** The site an export plan serves (`POST /backup {"siteId"}`). */
    site: z.string().min(1).optional(),
    hooks: Hooks.optional(),
    notify: Notify.optional(),
    /** `behind` when the last success is older (default: two schedule intervals). */
    maxAge: Duration.optional(),
    /** Attempts per task before it fails (and goes to the retry list). */
    maxAttempts: z.number().int().min(1).max(20).default(3),
    paused: z.boolean().default(false),
    check: CheckOptions.optional(),
  })
  .superRefine((p, ctx) => {
    if (p.schedule !== undefined) {
      const e = checkCron(p.schedule, p.timezone);
      if (e) ctx.addIssue({ code: 'custom', path: ['schedule'], message: e });
    }
    if (p.check) {
      const e = checkCron(p.check.schedule, p.timezone);
      if (e) ctx.addIssue({ code: 'custom', path: ['check', 'schedule'], message: e });
      try {
        parseCheckReadData(p.check.readData);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['check', 'readData'], message: (err as Error).message });
      }
      if (p.target.kind !== 'repository') ctx.addIssue({ code: 'custom', path: ['check'], message: `checks read a repository; an ${p.target.kind} target has none` });
    }
    if (p.timezone !== undefined) {
      try {
        new Intl.DateTimeFormat('en', { timeZone: p.timezone });
      } catch {
        ctx.addIssue({ code: 'custom', path: ['timezone'], message: `unknown time zone ${JSON.stringify(p.timezone)}: use an IANA name such as Europe/Berlin` });
      }
    }
    if (p.target.kind !== 'repository' || !p.sources.some((s) => s.kind === 'path')) {
      for (const k of ['oneFileSystem', 'ignoreInode', 'ignoreCtime', 'withAtime', 'skipIfUnchanged'] as const) {
        if (p[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `${k} applies to folders backed up into a repository` });
      }
    }
    const http = p.sources.some((s) => s.kind === 'http');
    if (http && p.watch) ctx.addIssue({ code: 'custom', path: ['watch'], message: 'an http source cannot be watched' });
    if (http && p.sources.length > 1) ctx.addIssue({ code: 'custom', path: ['sources'], message: 'an http source is a plan of its own' });
    if (p.target.kind === 'mirror' && p.sources.length !== 1) ctx.addIssue({ code: 'custom', path: ['sources'], message: 'a mirror follows exactly one folder' });
    p.sources.forEach((s, i) => {
      if (s.kind !== 'path') return;
      const tagged = s.excludeCaches !== undefined || s.excludeIfPresent !== undefined || s.excludeLargerThan !== undefined;
      if (tagged && p.target.kind !== 'repository') {
        ctx.addIssue({ code: 'custom', path: ['sources', i], message: 'excludeCaches, excludeIfPresent and excludeLargerThan apply to repository targets' });
      }
      (s.excludeIfPresent ?? []).forEach((spec, k) => {
        try {
          parseTagRule(spec);
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: ['sources', i, 'excludeIfPresent', k], message: (err as Error).message });
        }
      });
      if (typeof s.excludeLargerThan === 'string') {
        try {
          parseSize(s.excludeLargerThan, 'excludeLargerThan');
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: ['sources', i, 'excludeLargerThan'], message: (err as Error).message });
        }
      }
    });
    if (typeof p.prune === 'object' && p.prune.maxUnused !== undefined) {
      try {
        parseMaxUnused(p.prune.maxUnused);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['prune', 'maxUnused'], message: (err as Error).message });
      }
    }
    if (p.prune && !p.retention) ctx.addIssue({ code: 'custom', path: ['prune'], message: 'prune follows retention: give the plan a retention too' });
    const dbs = p.sources.filter((s) => s.kind === 'database');
    if (dbs.length > 0) {
      if (dbs.length !== p.sources.length) ctx.addIssue({ code: 'custom', path: ['sources'], message: 'database sources make a plan of their own (no folders or http sources beside them)' });
      if (p.watch) ctx.addIssue({ code: 'custom', path: ['watch'], message: 'a database source cannot be watched: give it a schedule' });
      if (p.target.kind !== 'repository') ctx.addIssue({ code: 'custom', path: ['target'], message: 'database sources write to repository targets' });
      const names = new Set<string>();
      dbs.forEach((d, i) => {
        try {
          const loc = parseDbUrl(d.url);
          if (loc.password !== undefined) ctx.addIssue({ code: 'custom', path: ['sources', i, 'url'], message: 'keep the password out of the URL: put it in a 0600 file named by passwordFile' });
          const name = databaseTaskName(d);
          if (names.has(name)) ctx.addIssue({ code: 'custom', path: ['sources', i, 'url'], message: `${name} is listed twice` });
          names.add(name);
          if (typeof d.verify === 'object' && d.verify.scratch !== undefined) parseDbUrl(d.verify.scratch, { needName: false });
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: ['sources', i, 'url'], message: (err as Error).message });
        }
      });
    }
  });
export type Plan = z.output<typeof PlanInput>;
export type PlanInput = z.input<typeof PlanInput>;

export function watchOptions(p: Plan): z.output<typeof WatchOptions> | null {
  if (!p.watch) return null;
  return p.watch === true ? WatchOptions.parse({}) : p.watch;
}

/** Joins zod's issues into one message that names each field. */
export function describeIssues(err: z.ZodError): string {
  return err.issues.map((i) => (i.path.length > 0 ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
}

/** Validates a plan; `BAD_INPUT` with every problem named. Relative source paths resolve against `base`. */
export function parsePlan(input: unknown, base = process.cwd()): Plan {
  const r = PlanInput.safeParse(input);
  if (!r.success) throw new CairnError('BAD_INPUT', `invalid plan: ${describeIssues(r.error)}`);
  const plan = r.data;
  for (const s of plan.sources) if (s.kind === 'path') s.path = path.resolve(base, s.path);
  return plan;
}

/** Checks what only the machine can answer: that source folders exist. */
export function checkPlanPaths(plan: Plan): void {
  for (const s of plan.sources) {
    if (s.kind !== 'path') continue;
    if (!fs.existsSync(s.path)) throw new CairnError('BAD_INPUT', `invalid plan: source path ${s.path} does not exist`);
  }
}

export const DaemonConfig = z.strictObject({
  dataDir: z.string().optional(),
  listen: z.string().optional(),
  catalog: z.string().optional(),
  /** The daemon's own repository (default DATA_DIR/repo) and its password file (default DATA_DIR/repo-password). */
  repository: z.string().optional(),
  passwordFile: z.string().optional(),
  /** Seconds running tasks get to finish after SIGTERM before they are interrupted and checkpointed. */
  shutdownGraceSeconds: z.number().min(0).max(3600).default(10),
  /** Jobs that run at once (different plans). */
  concurrency: z.number().int().min(1).max(64).default(2),
  /** Base delay of the exponential backoff between task attempts. */
  retryBaseMs: z.number().int().min(1).max(3_600_000).default(2000),
  /** Days after which a repository's cache in DATA_DIR/cache that no job used is removed (0: never). */
  cacheMaxAgeDays: z.number().int().min(0).max(36_500).default(30),
  plans: z.array(z.unknown()).default([]),
});
export type DaemonConfig = z.output<typeof DaemonConfig>;

/** Replaces `${NAME}` and `${NAME:-default}` in every string; an unset variable without a default is an error. */
export function expandEnv(value: unknown, env: NodeJS.ProcessEnv = process.env): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, def: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      throw new CairnError('BAD_INPUT', `config refers to \${${name}}, which is not set (set it, add it to .env, or write \${${name}:-default})`);
    });
  }
  if (Array.isArray(value)) return value.map((v) => expandEnv(v, env));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env)]));
  return value;
}

/** Reads a config file (YAML or JSON), with `.env` from its folder, and validates it. Plans are validated too. */
export function loadConfig(file: string | undefined): { config: DaemonConfig; plans: Plan[] } {
  if (!file) return { config: DaemonConfig.parse({}), plans: [] };
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot read config file ${abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  dotenv.config({ path: path.join(path.dirname(abs), '.env'), quiet: true });
  let raw: unknown;
  try {
    raw = /\.json$/i.test(abs) ? JSON.parse(text) : YAML.parse(text);
  } catch (err) {
    throw new CairnError('BAD_INPUT', `config file ${abs} is not valid ${/\.json$/i.test(abs) ? 'JSON' : 'YAML'}: ${(err as Error).message}`);
  }
  const r = DaemonConfig.safeParse(expandEnv(raw ?? {}));
  if (!r.success) throw new CairnError('BAD_INPUT', `config file ${abs}: ${describeIssues(r.error)}`);
  const base = path.dirname(abs);
  const plans = r.data.plans.map((p, i) => {
    try {
      return parsePlan(p, base);
    } catch (err) {
      throw new CairnError('BAD_INPUT', `config file ${abs}, plans[${i}]: ${(err as Error).message}`);
    }
  });
  return { config: r.data, plans };
}
