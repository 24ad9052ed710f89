import { Command } from 'commander';
import path from 'node:path';
import { CairnError } from '../../errors.js';
import type { ClientOptions } from '../../service/client.js';
import type { JobRecord } from '../../service/catalog.js';
import type { Plan } from '../../service/config.js';
import type { PlanStatus } from '../../service/daemon.js';
import { formatBytes } from '../progress.js';
import type { Context } from '../context.js';
import type { Run } from '../main.js';

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
  maxAge?: string;
  paused?: boolean;
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
  return lines.join('\n');
}

function show(ctx: Context, value: unknown, text: string): void {
  if (ctx.opts.json) ctx.json(value);
  else ctx.print(text);
}

export function registerPlan(program: Command, run: Run): void {
  const plan = program.command('plan').description("manage the daemon's plans (add, ls, show, rm, pause, resume, run)");
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
      .option('--max-age <age>', 'report the plan as behind when its last success is older')
      .option('--paused', 'add the plan paused'),
  ).action((n: string, o: AddFlags) =>
    run(async (ctx) => {
      if (o.path.length === 0) throw new CairnError('BAD_INPUT', 'a plan needs at least one --path');
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
        ...(o.maxAge !== undefined && { maxAge: o.maxAge }),
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

  connection(plan.command('run <name>').description('run a plan now').option('--wait', 'wait for the job to finish')).action((n: string, o: ClientOptions & { wait?: boolean }) =>
    run(async (ctx) => {
      const c = await client(o);
      let job = await c.request<JobRecord>('POST', `/api/v1/plans/${name(n)}/run`);
      while (o.wait && (job.state === 'pending' || job.state === 'running') && !ctx.signal.aborted) {
        await new Promise((r) => setTimeout(r, 500));
        job = await c.request<JobRecord>('GET', `/api/v1/jobs/${job.id}`);
      }
      show(ctx, job, `job ${job.id} ${job.state}${job.error ? `: ${job.error}` : ''}`);
      if (job.state === 'failed') throw new CairnError('INTERNAL', `job ${job.id} failed`);
    }),
  );
}
