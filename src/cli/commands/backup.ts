import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { CairnError } from '../../errors.js';
import { Archiver, type BackupResult } from '../../archiver/archiver.js';
import { backupStream } from '../../archiver/stdin.js';
import { scanTotals } from '../../archiver/scanner.js';
import { buildExcluder } from '../../archiver/excludes.js';
import { readFilesFrom } from '../../archiver/files-from.js';
import { Scout } from '../../archiver/scout.js';
import { findParent, findSnapshot } from '../../repository/find.js';
import { shortId } from '../../repository/id.js';
import type { Context } from '../context.js';
import { formatBytes, formatDuration } from '../progress.js';
import type { Run } from '../program.js';
import { backupDatabases } from './db.js';
import { parseSize } from '../../util/size.js';
import { parseLocalTime } from '../../fs/time.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface BackupFlags {
  tag: string[];
  host?: string;
  exclude: string[];
  iexclude: string[];
  excludeFile: string[];
  iexcludeFile: string[];
  excludeCaches?: boolean;
  excludeIfPresent: string[];
  excludeLargerThan?: string;
  oneFileSystem?: boolean;
  dryRun?: boolean;
  parent?: string;
  force?: boolean;
  skipIfUnchanged?: boolean;
  /** False with --no-scan. */
  scan?: boolean;
  ignoreInode?: boolean;
  ignoreCtime?: boolean;
  time?: string;
  withAtime?: boolean;
  stdin?: boolean;
  stdinFilename: string;
  filesFrom: string[];
  filesFromVerbatim: string[];
  filesFromRaw: string[];
  db: string[];
  dbPasswordFile?: string;
}

export function registerBackup(program: Command, run: Run): void {
  program
    .command('backup [paths...]')
    .description('create a new snapshot of files and folders')
    .option('--tag <tags>', 'add tags (comma-separated; may be repeated)', collect, [])
    .option('--host <name>', 'hostname to record (default: this machine)')
    .option('-e, --exclude <pattern>', 'exclude paths matching pattern (may be repeated)', collect, [])
    .option('--iexclude <pattern>', 'like --exclude, ignoring case', collect, [])
    .option('--exclude-file <file>', 'read exclude patterns from a file', collect, [])
    .option('--iexclude-file <file>', 'like --exclude-file, ignoring case', collect, [])
    .option('--exclude-caches', 'leave out the contents of folders that hold a CACHEDIR.TAG file (the tag file stays)')
    .option('--exclude-if-present <name[:header]>', 'leave out the contents of folders that hold this file (starting with header, if given; the file stays; may be repeated)', collect, [])
    .option('--exclude-larger-than <size>', 'leave out files larger than size (e.g. 500M, 2G)')
    .option('--files-from <file>', 'read the paths to back up from a file: one glob pattern per line, # comments ("-": standard input)', collect, [])
    .option('--files-from-verbatim <file>', 'read the paths to back up from a file, one per line, exactly as written', collect, [])
    .option('--files-from-raw <file>', 'read the paths to back up from a file, separated by NUL bytes (find -print0)', collect, [])
    .option('-x, --one-file-system', 'do not cross file system boundaries')
    .option('-n, --dry-run', 'read and hash everything, report what would be added, write nothing to the repository')
    .option('--parent <snapshot>', 'use this parent snapshot (default: latest with the same host and paths)')
    .option('-f, --force', 'read all files, even those unchanged since the parent')
    .option('--skip-if-unchanged', 'save no snapshot when nothing changed since the parent (restic 0.17)')
    .option('--no-scan', 'do not count the files and bytes first (progress then shows no total or ETA)')
    .option('--read-concurrency <n>', "restic's flag, for scripts that pass it: Cairn's workers read as many files at once as suits the cores", (v: string) => {
      if (!/^[1-9]\d*$/.test(v)) throw new InvalidArgumentError('a number of files, at least 1');
      return Number(v);
    })
    .option('--ignore-inode', 'a file is unchanged when its size and mtime match the parent, whatever its inode and ctime (for file systems without stable inodes)')
    .option('--ignore-ctime', 'a file is unchanged when its size and mtime (and inode) match the parent, whatever its ctime')
    .option('--time <time>', "the snapshot's time, local (2006-01-02 15:04:05), instead of now")
    .option('--with-atime', 'store access times (otherwise, as restic does, a node records its mtime as its atime)')
    .option('--stdin', 'back up standard input as one file')
    .option('--stdin-filename <name>', 'file name for --stdin', 'stdin')
    .option('--db <url>', 'back up a database dump: mysql://, mariadb://, postgres://, sqlite: (may be repeated)', collect, [])
    .option('--db-password-file <file>', 'database password for --db URLs without one (env CAIRN_DB_PASSWORD)')
    .action((paths: string[], o: BackupFlags) => run((ctx) => backup(ctx, paths, o)));
}

async function backup(ctx: Context, rawPaths: string[], o: BackupFlags): Promise<void> {
  const tags = o.tag.flatMap((t) => t.split(',')).filter(Boolean);
  const host = o.host ?? os.hostname();
  rawPaths.push(...readFilesFrom({ patterns: o.filesFrom, verbatim: o.filesFromVerbatim, raw: o.filesFromRaw }, (m) => ctx.warn(`Warning: ${m}`)));
  if (o.db.length > 0) {
    if (o.stdin || rawPaths.length > 0) throw new CairnError('BAD_INPUT', '--db cannot be combined with file paths or --stdin');
    if (o.dryRun) throw new CairnError('BAD_INPUT', '--dry-run is not available with --db');
    return backupDatabases(ctx, o.db, { host, tags, passwordFile: o.dbPasswordFile });
  }
  if (o.stdin && rawPaths.length > 0) throw new CairnError('BAD_INPUT', '--stdin and file paths cannot be combined');
  if (!o.stdin && rawPaths.length === 0) throw new CairnError('BAD_INPUT', 'nothing to back up: give at least one path, or --stdin');
  const paths = [...new Set(rawPaths.map((p) => path.resolve(p)))];
  for (const p of paths) {
    try {
      await fs.lstat(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new CairnError('BAD_INPUT', `cannot back up ${p}: ${code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
    }
  }
  const timeNs = o.time === undefined ? undefined : parseLocalTime(o.time, '--time');
  const excluder = await buildExcluder({
    exclude: o.exclude,
    iexclude: o.iexclude,
    excludeFiles: o.excludeFile,
    iexcludeFiles: o.iexcludeFile,
    caches: o.excludeCaches,
    ifPresent: o.excludeIfPresent,
    largerThan: o.excludeLargerThan === undefined ? undefined : parseSize(o.excludeLargerThan, '--exclude-larger-than'),
  });

  // Folders are read ahead on a thread from now on, while the key is derived and the index loaded.
  const scout = o.stdin ? undefined : new Scout({ ...excluder.lists, oneFileSystem: !!o.oneFileSystem }, paths);
  let result: BackupResult;
  let started: number;
  try {
    const repo = await ctx.openRepository({ dryRun: o.dryRun });
    // A lock waits a moment for racing clients before it counts; walk and hash meanwhile. A dry
    // run writes no lock (it writes nothing), as with --no-lock.
    if (!o.dryRun) await ctx.lock(repo, false, { overlap: true });
    // The parent snapshot is looked for while the index loads: neither needs the other.
    const parentP = o.stdin || (o.force && !o.parent) ? Promise.resolve(null) : o.parent ? findSnapshot(repo, o.parent) : findParent(repo, host, paths);
    parentP.catch(() => undefined);
    await repo.loadIndex();
    const pool = ctx.pool(repo);
    started = Date.now();
    if (o.stdin) {
      result = await backupStream(repo, pool, process.stdin, o.stdinFilename, { host, tags, timeNs, signal: ctx.signal });
    } else {
      const parent = await parentP;
      if (parent && !ctx.opts.json) ctx.print(`using parent snapshot ${shortId(parent.id)}`);
      const progress = ctx.progress();
      const totals = { files: 0, bytes: 0 };
      const excluded = excluder.patterns.length > 0 ? excluder.excluded : undefined;
      if (ctx.progressMode() !== 'none' && o.scan !== false) {
        void scanTotals(paths, excluded, (t) => Object.assign(totals, t), ctx.signal, excluder.lists);
      }
      const archiver = new Archiver(repo, pool, {
        paths,
        tags,
        host,
        excluded,
        excludePatterns: o.exclude,
        excludeLists: excluder.lists,
        oneFileSystem: o.oneFileSystem,
        scout,
        parent,
        force: o.force,
        skipIfUnchanged: o.skipIfUnchanged,
        ignoreInode: o.ignoreInode,
        ignoreCtime: o.ignoreCtime,
        timeNs,
        withAtime: o.withAtime,
        signal: ctx.signal,
        onProgress: (p) =>
          progress.update({ filesDone: p.filesDone, bytesDone: p.bytesDone, filesTotal: totals.files || undefined, bytesTotal: totals.bytes || undefined, errors: p.errors, current: p.current }),
        onError: (p, err) => {
          if (ctx.opts.json) ctx.json({ message_type: 'error', error: { message: err.message }, during: 'archival', item: p });
          else ctx.err.write(`error: ${err.message}\n`);
        },
        // -vv: each file, as restic -vv lists it (verbose_status lines with --json).
        onFile:
          (ctx.opts.verbose ?? 0) >= 2 && !ctx.opts.quiet
            ? (p, action, added) => {
                if (ctx.opts.json) ctx.json({ message_type: 'verbose_status', action, item: p, data_size: added });
                else ctx.write(`${action.padEnd(9)} ${p}${action === 'unchanged' ? '' : ` (${formatBytes(added)} added)`}\n`);
              }
            : undefined,
      });
      result = await archiver.run();
      progress.done({ filesDone: result.summary.total_files_processed, bytesDone: result.summary.total_bytes_processed, filesTotal: totals.files || undefined, bytesTotal: totals.bytes || undefined, errors: result.errors.length });
    }
  } finally {
    await scout?.close();
  }
  reportBackup(ctx, result, (Date.now() - started) / 1000, {}, o.dryRun);
  if (result.errors.length > 0) {
    throw new CairnError('PARTIAL', `Warning: at least one source file could not be read (${result.errors.length} errors); ${o.dryRun ? 'the dry run went on without them' : `snapshot ${shortId(result.snapshotId)} was saved without them`}`);
  }
}

/** Prints a backup's summary: restic's JSON `summary` message, or a few lines of text. */
export function reportBackup(ctx: Context, result: BackupResult, seconds: number, extra: Record<string, unknown> = {}, dryRun = false): void {
  const s = result.summary;
  if (ctx.opts.json) {
    ctx.json({
      message_type: 'summary',
      files_new: s.files_new,
      files_changed: s.files_changed,
      files_unmodified: s.files_unmodified,
      dirs_new: s.dirs_new,
      dirs_changed: s.dirs_changed,
      dirs_unmodified: s.dirs_unmodified,
      data_blobs: s.data_blobs,
      tree_blobs: s.tree_blobs,
      data_added: s.data_added,
      data_added_packed: s.data_added_packed,
      total_files_processed: s.total_files_processed,
      total_bytes_processed: s.total_bytes_processed,
      total_duration: seconds,
      // As restic: a dry run saves no snapshot, and says it was one; a skipped one has no id.
      ...(dryRun ? { dry_run: true } : result.skipped ? {} : { snapshot_id: result.snapshotId }),
      ...extra,
    });
  } else {
    ctx.print(`\nFiles:       ${s.files_new} new, ${s.files_changed} changed, ${s.files_unmodified} unmodified`);
    ctx.print(`Dirs:        ${s.dirs_new} new, ${s.dirs_changed} changed, ${s.dirs_unmodified} unmodified`);
    ctx.print(`${dryRun ? 'Would add' : 'Added'} to the repository: ${formatBytes(s.data_added)} (${formatBytes(s.data_added_packed)} stored)`);
    ctx.print(`\nprocessed ${s.total_files_processed} files, ${formatBytes(s.total_bytes_processed)} in ${formatDuration(seconds)}`);
    if (!dryRun) ctx.print(result.skipped ? `skipped creating snapshot: nothing changed since ${shortId(result.snapshotId)}` : `snapshot ${shortId(result.snapshotId)} saved`);
  }
}
