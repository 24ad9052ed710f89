#!/usr/bin/env -S MALLOC_TRIM_THRESHOLD_=33554432 MALLOC_ARENA_MAX=2 node --max-semi-space-size=4 --heap-growing-percent=30 --expose-gc
// The young generation is capped at 4 MiB per semi-space (V8's default grows to 16): a backup
// or restore makes many short-lived objects, and a larger nursery only holds more garbage
// (unchanged backup of the benchmark corpus: peak RSS -28 MB, CPU unchanged). 2 MiB took another
// ~20 MiB off the corpus's backup at the same speed, but doubled the main thread's young
// collections in a backup of 100,000 small files (+250-300 ms of pauses, ~+6%); V8 rounds 3 up
// to 4. The old
// generation may grow 30% past what the last full collection kept before the next one (V8
// lets a fast program's heap grow up to fourfold): a backup of 200,000 small files peaked at
// ~230 rather than ~315 MiB, for ~0.3 s more of full collections. --expose-gc lets the threads
// that encrypt and decrypt collect the cipher's dead buffers as they go (see util/gc.ts). They
// must be command-line options: V8 sizes each heap when it creates it, and they apply to the
// worker threads too. MALLOC_TRIM_THRESHOLD_ lets glibc keep up to 32 MiB of freed memory at the
// top of each arena rather than hand it back past 128 KiB: the cipher's buffers, freed by the
// thousand at each young collection, were handed back and faulted in again, zeroed page by page
// (benchmark backup: ~120,000 -> ~75,000 page faults, ~6% less CPU, peak RSS unchanged).
// MALLOC_ARENA_MAX=2: glibc otherwise gives each thread that allocates an arena of its own (up to
// eight per core), each keeping its own freed memory; two arenas took 12-20 MiB off the
// benchmark backup's peak, ~10 off check and restore, at the same CPU (one arena cost check
// 6-13% more time). Like the V8 options these must be set before the process starts; glibc reads
// them once.
import { Command, CommanderError } from 'commander';
import { CairnError, exitCodeFor } from '../errors.js';
import { Context, type GlobalOptions } from './context.js';
import { registerRepoCommands } from './commands/repo.js';
import { registerBackup } from './commands/backup.js';
import { registerRestore } from './commands/restore.js';
import { registerBrowse } from './commands/browse.js';
import { registerForget } from './commands/forget.js';
import { registerTag } from './commands/tag.js';
import { registerRewrite } from './commands/rewrite.js';
import { registerPrune } from './commands/prune.js';
import { registerRepair } from './commands/repair.js';
import { registerCopy } from './commands/copy.js';
import { registerCache } from './commands/cache.js';
import { registerReceiver } from './commands/receiver.js';
import { registerDbCommands } from './commands/db.js';
import { registerDbDump } from './commands/db-dump.js';
import { registerDaemon } from './commands/daemon.js';
import { registerPlan } from './commands/plan.js';
import { PROGRAM_VERSION } from '../repository/snapshot.js';
import { filterSdkNodeWarning } from '../util/sdk-warning.js';

/** Runs a command body with a context, maps errors to messages and exit codes, always cleans up. */
export type Run = (fn: (ctx: Context) => Promise<void>) => Promise<void>;

export function buildProgram(): Command {
  const program = new Command();
  const controller = new AbortController();
  let interrupted = 0;
  const onSignal = (): void => {
    interrupted++;
    if (interrupted > 1) process.exit(130);
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  program
    .name('cairn')
    .description('deduplicated, encrypted backups in restic-compatible repositories')
    .version(PROGRAM_VERSION.replace('cairn ', ''))
    .option('-r, --repo <location>', 'repository: a path, s3:… or rest:… (env CAIRN_REPOSITORY)')
    .option('-p, --password-file <file>', 'read the password from a file (env CAIRN_PASSWORD_FILE)')
    .option('--password-command <command>', 'run this command and read the password from its output (env CAIRN_PASSWORD_COMMAND)')
    .option('--json', 'print JSON instead of text')
    .option('-q, --quiet', 'print nothing but errors and requested output')
    .option('-v, --verbose', 'say more (repeatable: -vv lists each file backup reads or takes from the parent)', (_v: string, n: number) => n + 1, 0)
    .option('--compression <mode>', 'compression for new data: auto, off or max')
    .option('--no-lock', 'do not lock the repository (read-only commands)')
    .option('--retry-lock <duration>', 'wait up to this long (30s, 5m, 1h30m) for a lock another client holds')
    .option('--limit-upload <KiB/s>', 'keep saving to the repository under this rate')
    .option('--limit-download <KiB/s>', 'keep loading from the repository under this rate')
    .option('--cache-dir <dir>', 'where the local cache lives (env CAIRN_CACHE_DIR; default ~/.cache/cairn)')
    .option('--no-cache', 'do not use or write the local cache')
    .option('-o, --option <backend.name=value>', 'set a backend option, e.g. -o s3.storage-class=STANDARD_IA (repeatable)', (v: string, all: string[] = []) => [...all, v])
    .showHelpAfterError()
    .exitOverride();

  const run: Run = async (fn) => {
    const g = program.opts<GlobalOptions & { lock?: boolean; cache?: boolean }>();
    const ctx = new Context({ ...g, noLock: g.lock === false, noCache: g.cache === false }, controller.signal);
    try {
      await fn(ctx);
    } catch (err) {
      const e = controller.signal.aborted && !(err instanceof CairnError) ? new CairnError('INTERRUPTED', 'interrupted') : err;
      const message = e instanceof CairnError ? e.message : `unexpected error: ${(e as Error).stack ?? String(e)}`;
      if (ctx.opts.json) process.stderr.write(`${JSON.stringify({ message_type: 'exit_error', code: exitCodeFor(e), message })}\n`);
      else process.stderr.write(`${message.startsWith('Fatal') || message.startsWith('Warning') ? '' : 'Fatal: '}${message}\n`);
      process.exitCode = exitCodeFor(e);
    } finally {
      await ctx.close();
    }
  };

  program
    .command('version')
    .description('print the version')
    .action(() =>
      run(async (ctx) => {
        const v = PROGRAM_VERSION.replace('cairn ', '');
        if (ctx.opts.json) ctx.json({ message_type: 'version', version: v, node_version: process.version, os: process.platform, arch: process.arch });
        else ctx.write(`cairn ${v} on node ${process.version} ${process.platform}/${process.arch}\n`);
      }),
    );

  registerRepoCommands(program, run);
  registerBackup(program, run);
  registerRestore(program, run);
  registerBrowse(program, run);
  registerForget(program, run);
  registerTag(program, run);
  registerRewrite(program, run);
  registerPrune(program, run);
  registerRepair(program, run);
  registerCopy(program, run);
  registerCache(program, run);
  registerReceiver(program, run);
  registerDbCommands(program, run);
  registerDbDump(program, run);
  registerDaemon(program, run);
  registerPlan(program, run);
  return program;
}

async function main(): Promise<void> {
  filterSdkNodeWarning();
  // A reader that goes away (`cairn … | head`) must not kill a backup half way and leave its lock:
  // the work goes on, and what it would have printed is dropped.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
    });
  }
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 1;
      return;
    }
    throw err;
  }
}

await main();
