import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { findSnapshot } from '../../repository/find.js';
import { shortId } from '../../repository/id.js';
import { describeLocation, parseDbUrl, redactUrl, type DbLocation } from '../../sources/db/url.js';
import type { VerifyReport } from '../../sources/db/verify.js';

/** The database engines are loaded when a database command runs, not whenever the CLI starts. */
const engines = async () => ({
  ...(await import('../../sources/db/backup.js')),
  ...(await import('../../sources/db/password.js')),
  ...(await import('../../sources/db/restore.js')),
  ...(await import('../../sources/db/verify.js')),
});
import type { Context } from '../context.js';
import type { Run } from '../program.js';
import { formatBytes, formatDuration } from '../progress.js';
import { reportBackup } from './backup.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/**
 * A password in a URL on the command line shows in `ps` for as long as the process runs; replacing
 * the process title blanks it from /proc/PID/cmdline once Cairn has started.
 */
function hidePasswordsFromPs(urls: string[]): void {
  if (urls.some((u) => redactUrl(u) !== u)) process.title = process.argv.map(redactUrl).join(' ');
}

async function locations(urls: string[], passwordFile?: string): Promise<DbLocation[]> {
  hidePasswordsFromPs(urls);
  const { withPassword } = await engines();
  return Promise.all(urls.map((u) => withPassword(parseDbUrl(u), passwordFile)));
}

/** `backup --db URL…`: one snapshot per database; a failed dump is reported and the others still run. */
export async function backupDatabases(ctx: Context, urls: string[], o: { host: string; tags: string[]; passwordFile?: string }): Promise<void> {
  const locs = await locations(urls, o.passwordFile);
  const repo = await ctx.openRepository();
  await ctx.lock(repo, false, { overlap: true });
  await repo.loadIndex();
  const pool = ctx.pool(repo);
  const failures: string[] = [];
  for (const loc of locs) {
    const started = Date.now();
    try {
      if (!ctx.opts.json) ctx.print(`dumping ${describeLocation(loc)}`);
      const result = await (await engines()).backupDatabase(repo, pool, loc, { host: o.host, tags: o.tags, signal: ctx.signal });
      reportBackup(ctx, result, (Date.now() - started) / 1000, { path: result.path });
    } catch (err) {
      if (ctx.signal.aborted || locs.length === 1) throw err;
      const message = err instanceof CairnError ? err.message : String(err);
      failures.push(message);
      if (ctx.opts.json) ctx.json({ message_type: 'error', error: { message }, during: 'dump', item: describeLocation(loc) });
      else ctx.err.write(`error: ${message}\n`);
    }
  }
  if (failures.length > 0) throw new CairnError('SOURCE_FAILED', `${failures.length} of ${locs.length} database backups failed; no snapshot was written for them`);
}

interface PickFlags {
  path: string[];
  host: string[];
  dbPasswordFile?: string;
}

export function registerDbCommands(program: Command, run: Run): void {
  program
    .command('db-restore <snapshot>')
    .description('load a database dump from a snapshot into a database (created if missing)')
    .requiredOption('--to <url>', 'the database to load into: mysql://user@host:port/name, postgres://…/name or sqlite:/path/file.db')
    .option('--path <path>', 'the dump in the snapshot, e.g. /mysql/shop.sql (with "latest": the latest snapshot of it)', collect, [])
    .option('-H, --host <host>', 'with "latest": only snapshots of this host', collect, [])
    .option('--db-password-file <file>', 'password for --to when its URL has none (env CAIRN_DB_PASSWORD)')
    .action((ref: string, o: PickFlags & { to: string }) =>
      run(async (ctx) => {
        if (o.path.length > 1) throw new CairnError('BAD_INPUT', 'db-restore loads one dump: give --path once');
        const [to] = await locations([o.to], o.dbPasswordFile);
        const repo = await ctx.openRepository();
        await ctx.lock(repo, false);
        const { DB_TAG, chooseDumpPath, restoreDatabase } = await engines();
        const snap = await findSnapshot(repo, ref, { hosts: o.host, tags: [DB_TAG], paths: o.path });
        const dumpPath = chooseDumpPath(snap, o.path[0]);
        await repo.loadIndex();
        const started = Date.now();
        if (!ctx.opts.json) ctx.print(`loading ${dumpPath} from snapshot ${shortId(snap.id)} into ${describeLocation(to)}`);
        const { bytes } = await restoreDatabase(repo, snap, dumpPath, to, ctx.signal);
        const seconds = (Date.now() - started) / 1000;
        if (ctx.opts.json) ctx.json({ message_type: 'summary', snapshot_id: snap.id, path: dumpPath, to: describeLocation(to), bytes_restored: bytes, total_duration: seconds });
        else ctx.print(`restored ${formatBytes(bytes)} in ${formatDuration(seconds)}`);
      }),
    );

  program
    .command('db-verify')
    .description('restore drill: load the latest dump into a scratch database, count tables and rows, drop it')
    .option('--db-snapshot <snapshot>', 'the snapshot to drill (default: latest)', 'latest')
    .option('--path <path>', 'the dump to drill, e.g. /mysql/shop.sql (may be repeated; default: the latest database snapshot)', collect, [])
    .option('-H, --host <host>', 'with "latest": only snapshots of this host', collect, [])
    .option('--scratch <url>', 'server for the scratch database: mysql://user@host:port or postgres://user@host:port (not needed for SQLite)')
    .option('--db-password-file <file>', 'password for --scratch when its URL has none (env CAIRN_DB_PASSWORD)')
    .action((o: PickFlags & { dbSnapshot: string; scratch?: string }) =>
      run(async (ctx) => {
        let scratch: DbLocation | undefined;
        if (o.scratch) {
          hidePasswordsFromPs([o.scratch]);
          scratch = await (await engines()).withPassword(parseDbUrl(o.scratch, { needName: false }), o.dbPasswordFile);
        }
        const repo = await ctx.openRepository();
        await ctx.lock(repo, false);
        await repo.loadIndex();
        const reports: VerifyReport[] = [];
        for (const wanted of o.path.length > 0 ? o.path : [undefined]) {
          const { DB_TAG, chooseDumpPath, verifyDump } = await engines();
          const snap = await findSnapshot(repo, o.dbSnapshot, { hosts: o.host, tags: [DB_TAG], paths: wanted ? [wanted] : [] });
          const report = await verifyDump(repo, snap, chooseDumpPath(snap, wanted), scratch, ctx.signal);
          reports.push(report);
          if (!ctx.opts.json) printDrill(ctx, report);
        }
        if (ctx.opts.json) ctx.json({ message_type: 'summary', drills: reports });
      }),
    );
}

function printDrill(ctx: Context, r: VerifyReport): void {
  ctx.print(`${r.path} from snapshot ${shortId(r.snapshot)}: loaded ${formatBytes(r.dump_bytes)} into scratch database ${r.scratch_database} in ${formatDuration(r.seconds)}, dropped it again`);
  ctx.print(`${r.tables} tables, ${r.rows} rows`);
  const width = Math.max(5, ...r.per_table.map((t) => t.table.length));
  ctx.print(`  ${'table'.padEnd(width)}  rows`);
  for (const t of r.per_table) ctx.print(`  ${t.table.padEnd(width)}  ${t.rows}`);
}
