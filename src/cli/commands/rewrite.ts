import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { buildExcluder } from '../../archiver/excludes.js';
import { findSnapshots } from '../../repository/find.js';
import { shortId } from '../../repository/id.js';
import { rewriteSnapshot, saveRewritten, type RewrittenSnapshot } from '../../maintenance/rewrite.js';
import type { Run } from '../program.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface RewriteFlags {
  exclude: string[];
  iexclude: string[];
  excludeFile: string[];
  iexcludeFile: string[];
  forget?: boolean;
  dryRun?: boolean;
  host: string[];
  tag: string[];
  path: string[];
}

export function registerRewrite(program: Command, run: Run): void {
  program
    .command('rewrite [snapshots...]')
    .description('rewrite snapshots without the files and folders that exclude patterns match (all snapshots the filters match when none is named)')
    .option('-e, --exclude <pattern>', 'leave out paths matching pattern (may be repeated)', collect, [])
    .option('--iexclude <pattern>', 'like --exclude, ignoring case', collect, [])
    .option('--exclude-file <file>', 'read exclude patterns from a file', collect, [])
    .option('--iexclude-file <file>', 'like --exclude-file, ignoring case', collect, [])
    .option('--forget', 'remove the original snapshots once their rewritten copies are saved')
    .option('-n, --dry-run', 'show what would be left out, change nothing')
    .option('--host <host>', 'only snapshots of this host', collect, [])
    .option('--tag <tags>', 'only snapshots with these tags (comma-separated: all of them)', collect, [])
    .option('--path <path>', 'only snapshots with this path', collect, [])
    .action((ids: string[], o: RewriteFlags) =>
      run(async (ctx) => {
        const excluder = await buildExcluder({ exclude: o.exclude, iexclude: o.iexclude, excludeFiles: o.excludeFile, iexcludeFiles: o.iexcludeFile });
        if (excluder.patterns.length === 0) throw new CairnError('BAD_INPUT', 'nothing to do: give --exclude, --iexclude, --exclude-file or --iexclude-file');
        const repo = await ctx.openRepository();
        if (!o.dryRun) await ctx.lock(repo, true);
        const filter = { hosts: o.host, tags: o.tag, paths: o.path };
        const chosen = await findSnapshots(repo, ids, filter);
        await repo.loadIndex();
        const results: RewrittenSnapshot[] = [];
        const memo = new Map<string, { id: string; excluded: string[] }>();
        for (const snap of chosen) results.push(await rewriteSnapshot(repo, snap, { excluded: excluder.excluded, forget: o.forget, dryRun: o.dryRun, signal: ctx.signal }, memo));
        if (!o.dryRun) await saveRewritten(repo, results, Boolean(o.forget));
        if (!ctx.opts.json) {
          results.forEach((r, i) => {
            const snap = chosen[i];
            ctx.print(`snapshot ${shortId(snap.id)} of [${snap.paths.join(' ')}] at ${snap.time}`);
            for (const p of r.excluded) ctx.print(`  excluding ${p}`);
            if (r.excluded.length === 0) ctx.print('  not modified');
            else if (o.dryRun) ctx.print(`  would save a new snapshot${o.forget ? ' and remove this one' : ''}`);
            else ctx.print(`  saved new snapshot ${shortId(r.newId!)}${o.forget ? `, removed ${shortId(snap.id)}` : ''}`);
          });
        }
        const changed = results.filter((r) => r.excluded.length > 0);
        if (ctx.opts.json) {
          ctx.json({ message_type: 'summary', dry_run: Boolean(o.dryRun), snapshots: results.map((r) => ({ id: r.id, new_id: r.newId ?? null, excluded: r.excluded })) });
        } else {
          ctx.print(`\n${o.dryRun ? 'would modify' : 'modified'} ${changed.length} of ${results.length} snapshots`);
        }
      }),
    );
}
