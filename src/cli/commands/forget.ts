import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { findSnapshot, matchesFilter } from '../../repository/find.js';
import { shortId } from '../../repository/id.js';
import { snapshotOutput, type Snapshot } from '../../repository/snapshot.js';
import { applyPolicy, groupSnapshots, parseDuration, policyIsEmpty, type Policy } from '../../maintenance/forget.js';
import type { Run } from '../program.js';
import { parseMaxUnused } from '../../maintenance/prune.js';
import { runPrune } from './prune.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface ForgetFlags {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  keepWithinHourly?: string;
  keepWithinDaily?: string;
  keepWithinWeekly?: string;
  keepWithinMonthly?: string;
  keepWithinYearly?: string;
  keepTag: string[];
  groupBy: string;
  host: string[];
  tag: string[];
  path: string[];
  dryRun?: boolean;
  prune?: boolean;
  maxUnused: string;
  maxRepackSize?: string;
  repackUncompressed?: boolean;
  repackCacheableOnly?: boolean;
}

function count(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (v === 'unlimited') return -1;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new CairnError('BAD_INPUT', `invalid --${flag} ${JSON.stringify(v)}: give a whole number or "unlimited"`);
  return n;
}

export function registerForget(program: Command, run: Run): void {
  program
    .command('forget [snapshots...]')
    .description('remove snapshots, named or chosen by a retention policy (data stays until prune)')
    .option('-l, --keep-last <n>', 'keep the last n snapshots')
    .option('-H, --keep-hourly <n>', 'keep the last n hourly snapshots')
    .option('-d, --keep-daily <n>', 'keep the last n daily snapshots')
    .option('-w, --keep-weekly <n>', 'keep the last n weekly snapshots')
    .option('-m, --keep-monthly <n>', 'keep the last n monthly snapshots')
    .option('-y, --keep-yearly <n>', 'keep the last n yearly snapshots')
    .option('--keep-within <duration>', 'keep snapshots newer than duration (e.g. 1y5m7d2h) before the latest')
    .option('--keep-within-hourly <duration>', 'keep hourly snapshots within duration of the latest')
    .option('--keep-within-daily <duration>', 'keep daily snapshots within duration of the latest')
    .option('--keep-within-weekly <duration>', 'keep weekly snapshots within duration of the latest')
    .option('--keep-within-monthly <duration>', 'keep monthly snapshots within duration of the latest')
    .option('--keep-within-yearly <duration>', 'keep yearly snapshots within duration of the latest')
    .option('--keep-tag <tags>', 'keep snapshots with these tags (comma-separated: all of them; may be repeated)', collect, [])
    .option('-g, --group-by <keys>', 'group snapshots by host, paths and/or tags', 'host,paths')
    .option('--host <host>', 'only snapshots of this host', collect, [])
    .option('--tag <tags>', 'only snapshots with these tags', collect, [])
    .option('--path <path>', 'only snapshots with this path', collect, [])
    .option('-n, --dry-run', 'show what would be removed, remove nothing')
    .option('--prune', 'then remove the data no snapshot needs any more (see prune)')
    .option('--max-unused <limit>', 'with --prune: unused space allowed to stay', '5%')
    .option('--max-repack-size <size>', 'with --prune: repack at most this much')
    .option('--repack-uncompressed', 'with --prune: repack and compress every pack that holds uncompressed data')
    .option('--repack-cacheable-only', 'with --prune: repack only tree packs')
    .action((ids: string[], o: ForgetFlags) =>
      run(async (ctx) => {
        const dur = (v: string | undefined) => (v === undefined ? undefined : parseDuration(v));
        const policy: Policy = {
          last: count('keep-last', o.keepLast),
          hourly: count('keep-hourly', o.keepHourly),
          daily: count('keep-daily', o.keepDaily),
          weekly: count('keep-weekly', o.keepWeekly),
          monthly: count('keep-monthly', o.keepMonthly),
          yearly: count('keep-yearly', o.keepYearly),
          within: dur(o.keepWithin),
          withinHourly: dur(o.keepWithinHourly),
          withinDaily: dur(o.keepWithinDaily),
          withinWeekly: dur(o.keepWithinWeekly),
          withinMonthly: dur(o.keepWithinMonthly),
          withinYearly: dur(o.keepWithinYearly),
          tags: o.keepTag.map((t) => t.split(',').filter(Boolean)),
        };
        const repo = await ctx.openRepository();
        if (o.prune) parseMaxUnused(o.maxUnused);
        if (!o.dryRun) await ctx.lock(repo, true);
        let toRemove: Snapshot[] = [];
        if (ids.length > 0) {
          toRemove = await Promise.all(ids.map((i) => findSnapshot(repo, i)));
        } else {
          if (policyIsEmpty(policy)) throw new CairnError('BAD_INPUT', 'no policy was given: use --keep-* options or name snapshots; nothing was removed');
          const all = (await repo.listSnapshots()).filter((s) => matchesFilter(s, { hosts: o.host, tags: o.tag, paths: o.path }));
          const report: Record<string, unknown>[] = [];
          for (const g of groupSnapshots(all, o.groupBy)) {
            const { keep, remove, reasons } = applyPolicy(g.snapshots, policy);
            toRemove.push(...remove);
            report.push({
              tags: g.tags,
              host: g.host ?? '',
              paths: g.paths,
              keep: keep.map(snapshotOutput),
              remove: remove.length > 0 ? remove.map(snapshotOutput) : null,
              reasons: reasons.map((r) => ({ snapshot: snapshotOutput(r.snapshot), matches: r.matches, counters: r.counters })),
            });
            if (!ctx.opts.json) {
              ctx.print(`snapshots for (host [${g.host ?? ''}]${g.paths ? `, paths [${g.paths.join(', ')}]` : ''}${g.tags ? `, tags [${g.tags.join(', ')}]` : ''}):`);
              ctx.print(`keep ${keep.length} snapshots:`);
              reasons.forEach((r) => ctx.print(`  ${shortId(r.snapshot.id)}  ${r.snapshot.time.slice(0, 19).replace('T', ' ')}  ${r.matches.join(', ')}`));
              if (remove.length > 0) {
                ctx.print(`remove ${remove.length} snapshots:`);
                remove.forEach((s) => ctx.print(`  ${shortId(s.id)}  ${s.time.slice(0, 19).replace('T', ' ')}`));
              }
              ctx.print('');
            }
          }
          if (ctx.opts.json) ctx.json(report);
        }
        if (o.dryRun) {
          if (!ctx.opts.json) ctx.print(`would have removed ${toRemove.length} snapshots`);
          return;
        }
        for (const s of toRemove) await repo.backend.remove({ type: 'snapshot', name: s.id });
        if (!ctx.opts.json) ctx.print(`removed ${toRemove.length} snapshots`);
        if (o.prune) await runPrune(ctx, repo, { maxUnused: o.maxUnused, maxRepackSize: o.maxRepackSize, repackUncompressed: o.repackUncompressed, repackCacheableOnly: o.repackCacheableOnly });
      }),
    );
}
