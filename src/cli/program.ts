import { Command } from 'commander';
import { CairnError, exitCodeFor } from '../errors.js';
import type { Context, GlobalOptions } from './context.js';
import { PROGRAM_VERSION } from '../repository/snapshot.js';

/** Runs a command body with a context, maps errors to messages and exit codes, always cleans up. */
export type Run = (fn: (ctx: Context) => Promise<void>) => Promise<void>;

/**
 * The CLI for `argv`: the program's own options, `version`, and the commands of the one module that
 * runs (see COMMAND_MODULES).
 */
export async function buildProgram(argv: readonly string[] = process.argv): Promise<Command> {
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
    const { Context } = await import('./context.js');
    const ctx: Context = new Context({ ...g, noLock: g.lock === false, noCache: g.cache === false }, controller.signal);
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

  const named = commandNamed(program, argv);
  const chosen = COMMAND_MODULES.filter((m) => named !== undefined && m.names.includes(named));
  const load = named === 'version' ? [] : chosen.length > 0 ? chosen : COMMAND_MODULES;
  for (const register of await Promise.all(load.map((m) => m.load()))) register(program, run);
  return program;
}

export type Register = (program: Command, run: Run) => void;

/**
 * Every command module, the top-level commands it adds, in the order help lists them. Only the
 * module of the command being run is loaded (help, a misspelt command or one not found in the
 * arguments loads them all): loading every command's code took ~30 of the ~300 ms a run of
 * `cairn snapshots` spent here.
 */
export const COMMAND_MODULES: { names: string[]; load: () => Promise<Register> }[] = [
  { names: ['init', 'check', 'migrate', 'list', 'unlock', 'key', 'cat', 'stats'], load: async () => (await import('./commands/repo.js')).registerRepoCommands },
  { names: ['backup'], load: async () => (await import('./commands/backup.js')).registerBackup },
  { names: ['restore', 'dump'], load: async () => (await import('./commands/restore.js')).registerRestore },
  { names: ['snapshots', 'ls', 'find', 'diff'], load: async () => (await import('./commands/browse.js')).registerBrowse },
  { names: ['forget'], load: async () => (await import('./commands/forget.js')).registerForget },
  { names: ['tag'], load: async () => (await import('./commands/tag.js')).registerTag },
  { names: ['rewrite'], load: async () => (await import('./commands/rewrite.js')).registerRewrite },
  { names: ['prune'], load: async () => (await import('./commands/prune.js')).registerPrune },
  { names: ['recover', 'repair', 'rebuild-index'], load: async () => (await import('./commands/repair.js')).registerRepair },
  { names: ['copy'], load: async () => (await import('./commands/copy.js')).registerCopy },
  { names: ['cache'], load: async () => (await import('./commands/cache.js')).registerCache },
  { names: ['receiver'], load: async () => (await import('./commands/receiver.js')).registerReceiver },
  { names: ['db-restore', 'db-verify'], load: async () => (await import('./commands/db.js')).registerDbCommands },
  { names: ['db-dump'], load: async () => (await import('./commands/db-dump.js')).registerDbDump },
  { names: ['daemon'], load: async () => (await import('./commands/daemon.js')).registerDaemon },
  { names: ['plan'], load: async () => (await import('./commands/plan.js')).registerPlan },
  { names: ['mount'], load: async () => (await import('./commands/mount.js')).registerMount },
  { names: ['generate'], load: async () => (await import('./commands/generate.js')).registerGenerate },
];

/**
 * The command `argv` runs: its first argument that is not one of the program's own options or
 * their values (`-r REPO`, `--repo=REPO`, `-qr REPO`). Undefined after `--`, at an option the
 * program does not have, or with no command.
 */
export function commandNamed(program: Command, argv: readonly string[]): string | undefined {
  const takesValue = (o: { required: boolean; optional: boolean }): boolean => o.required || o.optional;
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return undefined;
    if (a.startsWith('--')) {
      const o = program.options.find((x) => x.long === a.split('=')[0]);
      if (!o) return undefined;
      if (takesValue(o) && !a.includes('=')) i++;
    } else if (a.startsWith('-') && a.length > 1) {
      for (let k = 1; k < a.length; k++) {
        const o = program.options.find((x) => x.short === `-${a[k]}`);
        if (!o) return undefined;
        if (takesValue(o)) {
          if (k === a.length - 1) i++;
          break;
        }
      }
    } else return a;
  }
  return undefined;
}
