import { Command } from 'commander';
import { parseMaxUnused, prune, type PruneStats } from '../../maintenance/prune.js';
import type { Repository } from '../../repository/repository.js';
import type { Context } from '../context.js';
import type { Run } from '../program.js';
import { formatBytes } from '../progress.js';
import { parseSize } from '../../util/size.js';

/** Runs prune under the exclusive lock the caller holds, and reports. */
export async function runPrune(ctx: Context, repo: Repository, o: { maxUnused?: string; maxRepackSize?: string; repackUncompressed?: boolean; repackCacheableOnly?: boolean; dryRun?: boolean }): Promise<PruneStats> {
  const maxRepackBytes = o.maxRepackSize === undefined ? undefined : parseSize(o.maxRepackSize, '--max-repack-size');
  const stats = await prune(repo, { maxUnused: parseMaxUnused(o.maxUnused ?? '5%'), maxRepackBytes, repackUncompressed: o.repackUncompressed, repackCacheableOnly: o.repackCacheableOnly, dryRun: o.dryRun, signal: ctx.signal });
  if (ctx.opts.json) ctx.json({ message_type: 'prune', dry_run: Boolean(o.dryRun), ...stats });
  else {
    ctx.print(`${o.dryRun ? 'would remove' : 'removed'} ${stats.packsRemoved} packs and repack ${stats.packsRepacked} of ${stats.packs} into ${stats.packsWritten} new`);
    ctx.print(`${o.dryRun ? 'would free' : 'freed'} ${formatBytes(stats.bytesFreed)}; unused space ${formatBytes(stats.unusedBefore)} before, ${formatBytes(stats.unusedAfter)} after`);
    if (stats.notCompressed > 0) ctx.print(`not yet compressed: ${formatBytes(stats.notCompressed)} (prune --repack-uncompressed compresses it)`);
  }
  return stats;
}

export function registerPrune(program: Command, run: Run): void {
  program
    .command('prune')
    .description('remove data that no snapshot needs, repacking partly used packs')
    .option('--max-unused <limit>', 'unused space allowed to stay: a share of used data (5%), a size (10M) or unlimited', '5%')
    .option('--max-repack-size <size>', 'repack at most this much (e.g. 500M, 2G); the rest waits for the next prune')
    .option('--repack-uncompressed', 'repack every pack that holds uncompressed data, compressing it (version 2 repositories)')
    .option('--repack-cacheable-only', 'repack only tree packs (what a local cache holds); data packs stay as they are')
    .option('-n, --dry-run', 'show what would be removed, change nothing')
    .action((o: { maxUnused: string; maxRepackSize?: string; repackUncompressed?: boolean; repackCacheableOnly?: boolean; dryRun?: boolean }) =>
      run(async (ctx) => {
        parseMaxUnused(o.maxUnused);
        if (o.maxRepackSize !== undefined) parseSize(o.maxRepackSize, '--max-repack-size');
        const repo = await ctx.openRepository();
        await ctx.lock(repo, !o.dryRun);
        await runPrune(ctx, repo, o);
      }),
    );
}
