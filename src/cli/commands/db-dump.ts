import fs from 'node:fs/promises';
import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import type { DumpEvent, DumpResult } from '../../sources/db/pipeline/pipeline.js';
import type { Context } from '../context.js';
import type { Run } from '../program.js';
import { formatBytes } from '../progress.js';

interface DumpFlags {
  config: string;
  upload?: string;
  out?: string;
  concurrency: string;
  tokenFile?: string;
  retries: string;
}

export function registerDbDump(program: Command, run: Run): void {
  program
    .command('db-dump')
    .description('dump many databases, zip each dump and upload it to a receiver (or keep it in a folder)')
    .requiredOption('--config <file>', 'JSON list of databases: [{"database_name","db_host","db_port","db_username","db_password","engine"?}]')
    .option('--upload <url>', 'receiver base URL: each archive is POSTed to URL/{database_name}')
    .option('--out <dir>', 'keep the archives in this folder')
    .option('--concurrency <n>', 'databases in flight in each stage', '3')
    .option('--token-file <file>', 'bearer token for the receiver (first line of the file)')
    .option('--retries <n>', 'upload retries on 5xx answers and network errors', '4')
    .action((o: DumpFlags) => run((ctx) => dbDump(ctx, o)));
}

function positiveInt(v: string, flag: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new CairnError('BAD_INPUT', `invalid ${flag} ${JSON.stringify(v)}: give a whole number of at least ${min}`);
  return n;
}

async function dbDump(ctx: Context, o: DumpFlags): Promise<void> {
  const concurrency = positiveInt(o.concurrency, '--concurrency', 1);
  const retries = positiveInt(o.retries, '--retries', 0);
  // Loaded when db-dump runs, not whenever the CLI starts.
  const { loadDumpConfig } = await import('../../sources/db/pipeline/config.js');
  const { runDumpPipeline } = await import('../../sources/db/pipeline/pipeline.js');
  const entries = await loadDumpConfig(o.config);
  let token: string | undefined;
  if (o.tokenFile) {
    token = (
      await fs.readFile(o.tokenFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
        throw new CairnError('BAD_INPUT', `cannot read --token-file ${o.tokenFile}: ${err.code ?? err.message}`);
      })
    ).split(/\r?\n/)[0];
  }
  const started = Date.now();
  const results = await runDumpPipeline(entries, { upload: o.upload, outDir: o.out, concurrency, token, retries, signal: ctx.signal, onEvent: (e) => progressLine(ctx, e) });
  const failed = results.filter((r) => r.status === 'failed');
  const seconds = Math.round((Date.now() - started) / 10) / 100;
  if (ctx.opts.json) ctx.json({ message_type: 'summary', databases: results, succeeded: results.length - failed.length, failed: failed.length, total_duration: seconds });
  else printTable(ctx, results, seconds);
  if (ctx.signal.aborted) throw new CairnError('INTERRUPTED', 'db-dump interrupted');
  if (failed.length > 0) throw new CairnError('SOURCE_FAILED', `${failed.length} of ${results.length} databases failed: ${failed.map((r) => r.database).join(', ')}`);
}

function progressLine(ctx: Context, e: DumpEvent): void {
  if (ctx.opts.quiet) return;
  const what = e.stage;
  let text: string;
  if (e.state === 'started') text = `${what} started`;
  else if (e.state === 'done') text = `${what} done: ${formatBytes(e.bytes ?? 0)} in ${e.seconds ?? 0} s`;
  else if (e.state === 'retry') text = `${what}: ${e.message}`;
  else text = `${what} FAILED: ${e.message}`;
  ctx.err.write(`[${e.database}] ${text}\n`);
}

function printTable(ctx: Context, results: DumpResult[], seconds: number): void {
  const head = ['database', 'engine', 'status', 'dump', 'zip', 'seconds', 'archive or error'];
  const rows = results.map((r) => [
    r.database,
    r.engine,
    r.status === 'failed' ? `failed (${r.failed_stage})` : r.status,
    r.dump_bytes ? formatBytes(r.dump_bytes) : '-',
    r.zip_bytes ? formatBytes(r.zip_bytes) : '-',
    String(r.seconds),
    r.status === 'failed' ? (r.error ?? '').split('\n')[0] : r.archive,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  ctx.write(`${line(head)}\n`);
  for (const r of rows) ctx.write(`${line(r)}\n`);
  const ok = results.filter((r) => r.status !== 'failed').length;
  ctx.write(`${ok} of ${results.length} databases done in ${seconds} s\n`);
}
