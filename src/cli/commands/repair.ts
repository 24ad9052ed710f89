import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { repairIndex } from '../../maintenance/repair.js';
import { repairSnapshots } from '../../maintenance/repair-snapshots.js';
import { shortId } from '../../repository/id.js';
import type { Context } from '../context.js';
import type { Run } from '../main.js';

async function runRepairIndex(ctx: Context): Promise<void> {
  const repo = await ctx.openRepository();
  await ctx.lock(repo, true);
  const r = await repairIndex(repo, { signal: ctx.signal });
  if (ctx.opts.json) ctx.json({ message_type: 'repair_index', ...r });
  else {
    for (const d of r.damaged) ctx.err.write(`error: ${d.message}\n`);
    ctx.print(`indexed ${r.blobs} blobs in ${r.packs} packs; wrote ${r.indexFilesWritten} index files, removed ${r.indexFilesRemoved} old ones`);
  }
  if (r.damaged.length > 0) {
    throw new CairnError('INTEGRITY', `${r.damaged.length} packs could not be read and were left out of the index; run "cairn check" to see which snapshots are affected`);
  }
}

async function runRepairSnapshots(ctx: Context, o: { forget?: boolean; dryRun?: boolean }): Promise<void> {
  const repo = await ctx.openRepository();
  await ctx.lock(repo, !o.dryRun);
  await repo.loadIndex();
  const r = await repairSnapshots(repo, {
    forget: o.forget,
    dryRun: o.dryRun,
    signal: ctx.signal,
    onMessage: (id, m) => ctx.print(`snapshot ${shortId(id)}: ${m}`),
  });
  if (ctx.opts.json) {
    ctx.json({ message_type: 'repair_snapshots', dry_run: Boolean(o.dryRun), checked: r.checked, repaired: r.repaired.map((x) => ({ id: x.id, new_id: x.newId, removed: x.removed && !o.dryRun, changes: x.changes })) });
    return;
  }
  for (const x of r.repaired) {
    if (x.newId) ctx.print(`snapshot ${shortId(x.id)} repaired as ${shortId(x.newId)}${x.removed ? '; the damaged one is removed' : ''}`);
  }
  if (r.repaired.length === 0) ctx.print(`${r.checked} snapshots checked, none needs repair`);
  else if (o.dryRun) ctx.print(`${r.repaired.length} of ${r.checked} snapshots would be repaired (dry run: nothing changed)`);
  else if (!o.forget) ctx.print('the damaged snapshots are still there: remove them with "cairn forget ID" or run again with --forget');
}

export function registerRepair(program: Command, run: Run): void {
  const repair = program.command('repair').description('repair a damaged repository');
  repair
    .command('snapshots')
    .description('rewrite snapshots that reference missing data: files lose the missing parts, lost folders become empty')
    .option('--forget', 'remove the damaged snapshots after saving their repaired copies')
    .option('-n, --dry-run', 'show what would change, change nothing')
    .action((o: { forget?: boolean; dryRun?: boolean }) => run((ctx) => runRepairSnapshots(ctx, o)));
  repair
    .command('index')
    .description('rebuild the index from the packs themselves')
    .action(() => run(runRepairIndex));
  program
    .command('rebuild-index')
    .description('the same as "repair index" (restic 0.14 spelling)')
    .action(() => run(runRepairIndex));
}
