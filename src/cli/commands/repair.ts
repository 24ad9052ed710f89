import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { repairIndex } from '../../maintenance/repair.js';
import { repairSnapshots } from '../../maintenance/repair-snapshots.js';
import { recover } from '../../maintenance/recover.js';
import { shortId } from '../../repository/id.js';
import type { Context } from '../context.js';
import type { Run } from '../program.js';

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

async function runRecover(ctx: Context, o: { dryRun?: boolean; host?: string }): Promise<void> {
  const repo = await ctx.openRepository();
  await ctx.lock(repo, false);
  const say = (line: string): void => {
    if (!ctx.opts.json) ctx.print(line);
  };
  say('load index files');
  const r = await recover(repo, { dryRun: o.dryRun, host: o.host, signal: ctx.signal });
  say(`load ${r.trees} trees\nload snapshots\ndone\n`);
  for (const u of r.unreadable) ctx.warn(`tree ${u.id} could not be loaded: ${u.message}`);
  if (ctx.opts.json) {
    ctx.json({ message_type: 'summary', dry_run: Boolean(o.dryRun), trees: r.trees, roots: r.roots, snapshot_id: r.snapshotId, unreadable_trees: r.unreadable.map((u) => u.id) });
    return;
  }
  say(`found ${r.roots.length} unreferenced roots`);
  for (const id of r.roots) say(`  ${id}`);
  if (r.snapshotId) say(`saved new snapshot ${shortId(r.snapshotId)}`);
  else if (r.roots.length === 0) say('no snapshot to write.');
  else say('dry run: no snapshot written');
}

export function registerRepair(program: Command, run: Run): void {
  program
    .command('recover')
    .description('save a snapshot (path /recover, tag recovered) of every folder tree no snapshot reaches, as after a forget by mistake')
    .option('-n, --dry-run', 'list the unreferenced trees, write nothing')
    .option('--host <host>', 'the new snapshot\'s host (default: this one)')
    .action((o: { dryRun?: boolean; host?: string }) => run((ctx) => runRecover(ctx, o)));
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
