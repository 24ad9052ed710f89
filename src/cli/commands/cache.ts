import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { shortId } from '../../repository/id.js';
import { formatBytes } from '../progress.js';
import type { Run } from '../program.js';

/** restic's default: a repository's cache unused for this many days is old. */
const DEFAULT_MAX_AGE_DAYS = 30;

function parseMaxAge(v: string): number {
  if (!/^\d+$/.test(v)) throw new CairnError('BAD_INPUT', `--max-age must be a whole number of days, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** `cairn cache`: the local cache's repositories, and `--cleanup` of those unused for a while (as `restic cache`). */
export function registerCache(program: Command, run: Run): void {
  program
    .command('cache')
    .description('list the local cache of each repository; --cleanup removes those unused for --max-age days')
    .option('--cleanup', 'remove the caches not used for --max-age days')
    .option('--max-age <days>', `days after which an unused cache is old (default ${DEFAULT_MAX_AGE_DAYS})`)
    .action((o: { cleanup?: boolean; maxAge?: string }) =>
      run(async (ctx) => {
        const maxAge = o.maxAge === undefined ? DEFAULT_MAX_AGE_DAYS : parseMaxAge(o.maxAge);
        const cache = ctx.localCache();
        if (!cache) throw new CairnError('BAD_INPUT', 'the cache is turned off (--no-cache): nothing to list or clean up');
        if (o.cleanup) {
          const removed = await cache.removeOld(maxAge);
          if (ctx.opts.json) ctx.json({ removed: removed.map((c) => c.id), cache_dir: cache.dir });
          else ctx.print(removed.length === 0 ? `no old caches in ${cache.dir}` : `removed ${removed.length} old cache(s) from ${cache.dir}: ${removed.map((c) => shortId(c.id)).join(', ')}`);
          return;
        }
        const caches = await cache.list();
        const now = Date.now();
        const rows = caches.map((c) => {
          const days = Math.floor((now - c.lastUsed.getTime()) / 86_400_000);
          return { id: c.id, last_used: c.lastUsed.toISOString(), days, old: days >= maxAge, size: c.bytes };
        });
        if (ctx.opts.json) {
          ctx.json(rows.map(({ days: _days, ...r }) => r));
          return;
        }
        ctx.write('Repo ID     Last Used      Old   Size\n');
        ctx.write(`${'-'.repeat(46)}\n`);
        for (const r of rows) ctx.write(`${shortId(r.id)}    ${`${r.days} days ago`.padEnd(13)}  ${r.old ? 'yes' : '   '}   ${formatBytes(r.size)}\n`);
        ctx.write(`${'-'.repeat(46)}\n`);
        ctx.write(`${rows.length} cache dir(s) in ${cache.dir}\n`);
        const old = rows.filter((r) => r.old).length;
        if (old > 0) ctx.print(`${old} of them not used for ${maxAge} days or more: \`cairn cache --cleanup\` removes them`);
      }),
    );
}
