import { Command } from 'commander';
import path from 'node:path';
import { CairnError } from '../../errors.js';
import type { ClientOptions } from '../../service/client.js';
import type { JobRecord } from '../../service/catalog.js';
import type { Plan } from '../../service/config.js';
import type { PlanStatus } from '../../service/daemon.js';
import { formatBytes } from '../progress.js';
import type { Context } from '../context.js';
import type { Run } from '../program.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface PlanReply {
  plan: Plan;
  status: PlanStatus;
}

interface AddFlags extends ClientOptions {
  path: string[];
  exclude: string[];
  watch?: boolean;
  schedule?: string;
  timezone?: string;
  target?: string;
  retention?: string;
  tag: string[];
  compression?: string;
  oneFileSystem?: boolean;
  ignoreInode?: boolean;
  ignoreCtime?: boolean;
  withAtime?: boolean;
  maxAge?: string;
  paused?: boolean;
  check?: string;
  checkReadData?: string;
}

/** --check-read-data as the API takes it: `all` is every pack; else a subset as restic's. */
function readDataValue(v: string): boolean | string {
  return v === 'all' ? true : v;
}

/** Connection flags every `plan` subcommand takes (so they may come after the subcommand). */
function connection(cmd: Command): Command {
  return cmd
    .option('--daemon <url>', 'the daemon (env CAIRN_DAEMON; default: from DATA_DIR/daemon.json)')
    .option('--data-dir <dir>', "the daemon's data folder, for its address and token (env CAIRN_DATA_DIR)")
    .option('--token-file <file>', 'file holding the API token (env CAIRN_TOKEN_FILE; default DATA_DIR/api-token)');
}

function describe(r: PlanReply): string {
  const p = r.plan;
  const s = r.status;
  const when = [p.schedule ? `schedule ${JSON.stringify(p.schedule)}${p.timezone ? ` (${p.timezone})` : ''}` : null, p.watch ? 'watch' : null].filter(Boolean).join(' + ') || 'manual';
  const target = p.target.kind === 'repository' ? (p.target.repository ?? "the daemon's repository") : `${p.target.kind}:${p.target.dest}`;
  const lines = [
    `plan ${p.name}${s.paused ? ' (paused)' : ''}${s.running ? ' (running)' : ''}${s.behind ? ' (BEHIND)' : ''}`,
    `  sources:      ${p.sources.map((x) => (x.kind === 'path' ? x.path : x.kind === 'database' ? `database: ${x.url}` : `http: ${x.endpoints.map((e) => e.name).join(', ')}`)).join(', ')}`,
    `  target:       ${target}`,
    `  when:         ${when}`,
    `  last success: ${s.lastSuccess ?? 'never'}`,
    `  last run:     ${s.lastRun ? `${s.lastRun.state} at ${s.lastRun.at}${s.lastRun.error ? ` (${s.lastRun.error})` : ''}` : 'none'}`,
    `  next run:     ${s.nextRun ?? '-'}`,
  ];
  if (s.target.sizeBytes !== null) lines.push(`  target size:  ${formatBytes(s.target.sizeBytes)}${s.target.freeBytes !== null ? `, ${formatBytes(s.target.freeBytes)} free` : ''}`);
  if (s.pendingChanges > 0) lines.push(`  pending:      ${s.pendingChanges} changed paths`);
  const c = s.check;
  if (c) {
    const reads = p.check ? (p.check.readData === true ? ', reading every pack' : p.check.readData ? `, reading ${p.check.readData} of the packs` : '') : '';
    lines.push(`  checks:       ${c.schedule ? `schedule ${JSON.stringify(c.schedule)}${reads}` : 'on demand'}`);
    lines.push(`  last check:   ${c.lastRun ? `${c.lastRun.state} at ${c.lastRun.at}${c.lastRun.error ? ` (${c.lastRun.error})` : ''}` : 'none'}`);
    if (c.nextRun) lines.push(`  next check:   ${c.nextRun}`);
  }
  return lines.join('\n');
}

/** With `wait`, the job once it has ended (asked again every half second); else the job as it is. */
async function settled(c: { request<T>(method: string, route: string): Promise<T> }, job: JobRecord, wait: boolean | undefined, signal: AbortSignal): Promise<JobRecord> {
  while (wait && (job.state === 'pending' || job.state === 'running') && !signal.aborted) {
    await new Promise((r) => setTimeout(r, 500));
    job = await c.request<JobRecord>('GET', `/api/v1/jobs/${job.id}`);
  }
  return job;
}

function show(ctx: Context, value: unknown, text: string): void {
  if (ctx.opts.json) ctx.json(value);
  else ctx.print(text);
}

export function registerPlan(program: Command, run: Run): void {
  const plan = program.command('plan').description("manage the daemon's plans (add, ls, show, rm, pause, resume, run, check)");
  // The client is loaded when a plan command runs, not whenever the CLI starts.
  const client = async (o: ClientOptions) => new (await import('../../service/client.js')).DaemonClient(o);
  const name = (n: string) => encodeURIComponent(n);

  connection(
    plan
      .command('add <name>')
      .description('add a plan: what to back up, where, and when')
      .option('--path <path>', 'a folder or file to back up (may be repeated)', collect, [])
      .option('-e, --exclude <pattern>', 'exclude paths matching pattern, as restic writes them (may be repeated)', collect, [])
      .option('--watch', 'back up as soon as files change')
      .option('--schedule <cron>', "cron schedule, 5 or 6 fields (e.g. '*/5 * * * *')")
      .option('--timezone <zone>', 'time zone of the schedule (e.g. Europe/Berlin)')
      .option('--target <target>', "a repository location, archive:DIR or mirror:URL (default: the daemon's repository)")
      .option('--retention <policy>', 'keep snapshots younger than this age (1h, 7d, 6m, 1y)')
      .option('--tag <tag>', 'tag the snapshots (may be repeated)', collect, [])
      .option('--compression <mode>', 'auto, off or max')
      .option('-x, --one-file-system', 'do not cross file system boundaries (as backup -x)')
      .option('--ignore-inode', 'a file is unchanged when its size and mtime match, whatever its inode and ctime (as backup --ignore-inode)')
      .option('--ignore-ctime', 'a file is unchanged when its size, mtime and inode match, whatever its ctime')
      .option('--with-atime', 'store access times')
      .option('--max-age <age>', 'report the plan as behind when its last success is older')
      .option('--check <cron>', "check the repository on this schedule (e.g. '0 3 * * 0')")
      .option('--check-read-data <subset>', "with --check, read pack contents too: all, a percentage ('10%'), a size ('500M'), 'n/t', or 'next/t' for the next of t groups at each check")
      .option('--paused', 'add the plan paused'),
  ).action((n: string, o: AddFlags) =>
    run(async (ctx) => {
      if (o.path.length === 0) throw new CairnError('BAD_INPUT', 'a plan needs at least one --path');
      if (o.checkReadData !== undefined && o.check === undefined) throw new CairnError('BAD_INPUT', '--check-read-data needs --check (the schedule of the checks)');
      const body: Record<string, unknown> = {
        name: n,
        sources: o.path.map((p) => ({ path: path.resolve(p), ...(o.exclude.length > 0 && { excludes: o.exclude }) })),
        ...(o.target !== undefined && { target: o.target }),
        ...(o.schedule !== undefined && { schedule: o.schedule }),
        ...(o.timezone !== undefined && { timezone: o.timezone }),
        ...(o.watch && { watch: true }),
        ...(o.retention !== undefined && { retention: o.retention }),
        ...(o.tag.length > 0 && { tags: o.tag }),
        ...(o.compression !== undefined && { compression: o.compression }),
        ...(o.oneFileSystem && { oneFileSystem: true }),
        ...(o.ignoreInode && { ignoreInode: true }),
        ...(o.ignoreCtime && { ignoreCtime: true }),
        ...(o.withAtime && { withAtime: true }),
        ...(o.maxAge !== undefined && { maxAge: o.maxAge }),
        ...(o.check !== undefined && { check: { schedule: o.check, ...(o.checkReadData !== undefined && { readData: readDataValue(o.checkReadData) }) } }),
        ...(o.paused && { paused: true }),
      };
      const r = await (await client(o)).request<PlanReply>('POST', '/api/v1/plans', body);
      show(ctx, r, `added ${describe(r)}`);
    }),
  );

  connection(plan.command('ls').description('list plans with their status')).action((o: ClientOptions) =>
    run(async (ctx) => {
      const r = await (await client(o)).request<{ plans: PlanReply[] }>('GET', '/api/v1/plans');
      const rows = r.plans.map((p) => {
        const s = p.status;
        const state = s.paused ? 'paused' : s.running ? 'running' : s.behind ? 'behind' : 'ok';
        return `${p.plan.name.padEnd(20)} ${state.padEnd(8)} ${(s.lastSuccess ?? 'never').padEnd(25)} ${s.nextRun ?? (p.plan.watch ? 'on change' : '-')}`;
      });
      show(ctx, r.plans, r.plans.length === 0 ? 'no plans' : [`${'NAME'.padEnd(20)} ${'STATE'.padEnd(8)} ${'LAST SUCCESS'.padEnd(25)} NEXT RUN`, ...rows].join('\n'));
    }),
  );

  connection(plan.command('show <name>').description('show a plan and its status')).action((n: string, o: ClientOptions) =>
    run(async (ctx) => {
      const r = await (await client(o)).request<PlanReply>('GET', `/api/v1/plans/${name(n)}`);
      show(ctx, r, describe(r));
    }),
  );

  connection(plan.command('rm <name>').description('remove a plan (its snapshots stay)')).action((n: string, o: ClientOptions) =>
    run(async (ctx) => {
      await (await client(o)).request('DELETE', `/api/v1/plans/${name(n)}`);
      show(ctx, { removed: n }, `removed plan ${n}`);
    }),
  );

  for (const verb of ['pause', 'resume'] as const) {
    connection(plan.command(`${verb} <name>`).description(verb === 'pause' ? "stop a plan's schedule and watch until resumed" : 'start a paused plan again')).action((n: string, o: ClientOptions) =>
      run(async (ctx) => {
        const r = await (await client(o)).request<PlanReply>('POST', `/api/v1/plans/${name(n)}/${verb}`);
        show(ctx, r, `${verb === 'pause' ? 'paused' : 'resumed'} plan ${n}`);
      }),
    );
  }

  connection(
    plan
      .command('check <name>')
      .description("check a plan's repository now (the plan's check settings unless told otherwise)")
      .option('--read-data', 'read and verify every pack')
      .option('--read-data-subset <subset>', "read and verify some packs: 'n/t', 'next/t', a percentage ('10%') or a size ('500M')")
      .option('--wait', 'wait for the check to finish; exit 1 when it failed'),
  ).action((n: string, o: ClientOptions & { readData?: boolean; readDataSubset?: string; wait?: boolean }) =>
    run(async (ctx) => {
      if (o.readData && o.readDataSubset !== undefined) throw new CairnError('BAD_INPUT', '--read-data and --read-data-subset cannot be used together');
      const readData = o.readData ? true : o.readDataSubset;
      const c = await client(o);
      const job = await settled(c, await c.request<JobRecord>('POST', `/api/v1/plans/${name(n)}/check`, readData === undefined ? {} : { readData }), o.wait, ctx.signal);
      const r = job.tasks[0]?.result as { packs?: number; packsRead?: number; snapshots?: number; errors?: string[]; problems?: number; skipped?: string } | null;
      const lines = [`check ${job.id} ${job.state}${job.error ? `: ${job.error}` : ''}`];
      if (r?.skipped) lines.push(`  ${r.skipped}`);
      else if (r && r.packs !== undefined) lines.push(`  ${r.snapshots} snapshots, ${r.packs} packs, ${r.packsRead} read whole`);
      for (const e of r?.errors ?? []) lines.push(`  error: ${e}`);
      if (r?.problems !== undefined && r.errors && r.problems > r.errors.length) lines.push(`  … and ${r.problems - r.errors.length} more`);
      show(ctx, job, lines.join('\n'));
      if (job.state === 'failed') throw new CairnError(job.error?.startsWith('check found') ? 'INTEGRITY' : 'INTERNAL', `check ${job.id} failed`);
    }),
  );

  connection(plan.command('run <name>').description('run a plan now').option('--wait', 'wait for the job to finish')).action((n: string, o: ClientOptions & { wait?: boolean }) =>
    run(async (ctx) => {
      const c = await client(o);
      const job = await settled(c, await c.request<JobRecord>('POST', `/api/v1/plans/${name(n)}/run`), o.wait, ctx.signal);
      show(ctx, job, `job ${job.id} ${job.state}${job.error ? `: ${job.error}` : ''}`);
      if (job.state === 'failed') throw new CairnError('INTERNAL', `job ${job.id} failed`);
    }),
  );
}
