import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { repairIndex } from '../../maintenance/repair.js';
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

export function registerRepair(program: Command, run: Run): void {
  const repair = program.command('repair').description('repair a damaged repository');
  repair
    .command('index')
    .description('rebuild the index from the packs themselves')
    .action(() => run(runRepairIndex));
  program
    .command('rebuild-index')
    .description('the same as "repair index" (restic 0.14 spelling)')
    .action(() => run(runRepairIndex));
}
