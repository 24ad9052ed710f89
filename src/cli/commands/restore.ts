import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Command } from 'commander';
import { CairnError, noSpace } from '../../errors.js';
import { buildExcluder } from '../../archiver/excludes.js';
import { findSnapshot, splitSnapshotRef, type SnapshotFilter } from '../../repository/find.js';
import { findSubtree, restoreTree } from '../../restorer/restorer.js';
import { fileContent, findFileNode } from '../../restorer/file-stream.js';
import { shortId, type Id } from '../../repository/id.js';
import type { Repository } from '../../repository/repository.js';
import type { Snapshot } from '../../repository/snapshot.js';
import type { Run } from '../program.js';
import { OVERWRITE_MODES, type OverwriteMode } from '../../repository/worker-protocol.js';
import { prewarmWorkers } from '../../repository/worker-pool.js';
import { formatBytes } from '../progress.js';
import { RepeatedErrors } from '../repeats.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface FilterFlags {
  host: string[];
  tag: string[];
  path: string[];
}

export function filterOf(o: FilterFlags): SnapshotFilter {
  return { hosts: o.host, tags: o.tag, paths: o.path };
}

export function registerRestore(program: Command, run: Run): void {
  program
    .command('restore <snapshot>')
    .description('restore a snapshot (SNAPSHOT or SNAPSHOT:PATH) into a folder')
    .requiredOption('-t, --target <dir>', 'folder to restore into')
    .option('-i, --include <pattern>', 'restore only paths matching pattern (may be repeated)', collect, [])
    .option('-e, --exclude <pattern>', 'leave out paths matching pattern (may be repeated)', collect, [])
    .option('--iinclude <pattern>', 'like --include, ignoring case', collect, [])
    .option('--iexclude <pattern>', 'like --exclude, ignoring case', collect, [])
    .option('--verify', 'read the restored files back and verify them')
    .option('--overwrite <mode>', 'what to do with files already in the target: always (replace those whose content differs), if-changed (take those of the same size and mtime as right), if-newer (replace only with newer ones), never', 'always')
    .option('--delete', 'remove what the target holds that the snapshot does not (in the folders restored; paths left out by --include/--exclude stay)')
    .option('--dry-run', 'write nothing: show what would be restored, replaced and deleted (with -vv, each path)')
    .option('--no-owner', 'do not set owners (as root they are set by default): for targets that refuse them, such as NFS with root squashing, SMB or FAT')
    .option('--sparse', "restic's flag, for scripts that pass it: files are always restored sparse where they are sparse")
    .option('-H, --host <host>', 'with "latest": only snapshots of this host', collect, [])
    .option('--tag <tags>', 'with "latest": only snapshots with these tags', collect, [])
    .option('--path <path>', 'with "latest": only snapshots with this path', collect, [])
    .action((ref: string, o: FilterFlags & { target: string; include: string[]; exclude: string[]; iinclude: string[]; iexclude: string[]; verify?: boolean; overwrite: string; delete?: boolean; dryRun?: boolean; owner: boolean }) =>
      run(async (ctx) => {
        if (!OVERWRITE_MODES.includes(o.overwrite as OverwriteMode)) throw new CairnError('BAD_INPUT', `invalid --overwrite ${JSON.stringify(o.overwrite)}: use always, if-changed, if-newer or never`);
        if (o.dryRun && o.verify) throw new CairnError('BAD_INPUT', '--verify reads what a restore wrote, and --dry-run writes nothing: use one of them');
        const { ref: snapRef, subPath } = splitSnapshotRef(ref);
        const inc = await buildExcluder({ exclude: o.include, iexclude: o.iinclude });
        const exc = await buildExcluder({ exclude: o.exclude, iexclude: o.iexclude });
        // The workers load while the key is derived; the pool made below takes them.
        prewarmWorkers();
        const repo = await ctx.openRepository();
        // Workers boot and the snapshot and index load while the lock settles; nothing is written before.
        const pool = ctx.pool(repo).start();
        const lock = await ctx.lock(repo, false, { overlap: true });
        const snap = await findSnapshot(repo, snapRef, filterOf(o));
        await repo.loadIndex();
        await lock.confirmed;
        ctx.print(`${o.dryRun ? 'dry run: would restore' : 'restoring'} snapshot ${shortId(snap.id)} of [${snap.paths.join(' ')}] at ${snap.time} to ${o.target}`);
        const progress = ctx.progress();
        // With --json every error is a line of its own; on the terminal a repeated one is summed up.
        const repeats = new RepeatedErrors();
        const r = await restoreTree(repo, pool, snap.tree, subPath, {
          target: o.target,
          owner: o.owner ? undefined : false,
          include: inc.patterns.length > 0 ? inc.excluded : undefined,
          exclude: exc.patterns.length > 0 ? exc.excluded : undefined,
          verify: o.verify,
          overwrite: o.overwrite as OverwriteMode,
          delete: o.delete,
          dryRun: o.dryRun,
          signal: ctx.signal,
          // -vv: each path, as restic -vv lists it (verbose_status lines with --json).
          onAction:
            (ctx.opts.verbose ?? 0) >= 2 && !ctx.opts.quiet
              ? (action, p, size) => {
                  if (ctx.opts.json) ctx.json({ message_type: 'verbose_status', action, item: p, size });
                  else ctx.write(`${action.padEnd(9)} ${p}${size > 0 && action !== 'deleted' ? ` (${formatBytes(size)})` : ''}\n`);
                }
              : undefined,
          onProgress: (p) => progress.update({ filesDone: p.filesDone, bytesDone: p.bytesDone, filesTotal: p.filesTotal, bytesTotal: p.bytesTotal, errors: p.errors }),
          onError: (p, message) => {
            if (ctx.opts.json) ctx.json({ message_type: 'error', error: { message }, during: 'restore', item: p });
            else if (repeats.show(message)) ctx.err.write(`error: ${p}: ${message}\n`);
          },
        }).finally(() => {
          for (const line of repeats.summary()) ctx.err.write(`error: ${line}\n`);
        });
        progress.done({ filesDone: r.filesRestored + r.filesSkipped, bytesDone: r.bytesWritten, errors: r.errors.length });
        if (ctx.opts.json) {
          ctx.json({
            message_type: 'summary',
            dry_run: o.dryRun === true,
            total_files: r.filesRestored + r.filesSkipped,
            files_restored: r.filesRestored,
            files_skipped: r.filesSkipped,
            files_deleted: r.filesDeleted,
            total_bytes: r.bytesWritten + r.bytesSkipped,
            bytes_restored: r.bytesWritten,
            bytes_skipped: r.bytesSkipped,
            errors: r.errors.length,
          });
        } else {
          const deleted = o.delete ? `, ${r.filesDeleted} deleted` : '';
          ctx.print(`${o.dryRun ? 'would restore' : 'restored'} ${r.filesRestored} files (${formatBytes(r.bytesWritten)}), ${r.filesSkipped} left as they were (${formatBytes(r.bytesSkipped)})${deleted}`);
        }
        if (r.errors.length > 0) throw new CairnError('INTEGRITY', `Fatal: there were ${r.errors.length} errors while restoring`);
      }),
    );

  program
    .command('dump <snapshot> <path>')
    .description('print one file of a snapshot to standard output, or a folder ("/" for all of it) as a tar or zip archive')
    .option('-a, --archive <format>', 'the archive format for a folder: tar or zip', 'tar')
    .option('-H, --host <host>', 'with "latest": only snapshots of this host', collect, [])
    .option('--tag <tags>', 'with "latest": only snapshots with these tags', collect, [])
    .option('--path <path>', 'with "latest": only snapshots with this path', collect, [])
    .action((ref: string, file: string, o: FilterFlags & { archive: string }) =>
      run(async (ctx) => {
        // Loaded here: the archive writers are for this command alone, and every command starts faster without them.
        const { dumpFolder, parseDumpFormat } = await import('../../restorer/dump.js');
        const format = parseDumpFormat(o.archive);
        const repo = await ctx.openRepository();
        const lock = await ctx.lock(repo, false, { overlap: true });
        const snap = await findSnapshot(repo, ref, filterOf(o));
        await repo.loadIndex();
        const abs = (file.startsWith('/') ? file : `/${file}`).replace(/\/+$/, '') || '/';
        const folder = abs === '/' ? snap.tree : await folderTree(repo, snap, abs);
        await lock.confirmed;
        // A reader that goes away (`cairn dump … | head`) ends the dump: it is reported, not a crash.
        const closed = (err: unknown): never => {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE') {
            throw new CairnError('SOURCE_FAILED', 'standard output was closed before the dump was complete');
          }
          const full = noSpace(err);
          if (full) throw new CairnError('NO_SPACE', `writing standard output failed (${full}): the dump is incomplete`);
          throw err;
        };
        const out = ctx.out as Writable;
        if (folder !== null) {
          await dumpFolder(repo, folder, abs, format, out, ctx.signal).catch(closed);
          return;
        }
        const node = await findFileNode(repo, snap, abs);
        await pipeline(Readable.from(fileContent(repo, node)), out, { end: false }).catch(closed);
      }),
    );
}

/** The tree of the folder at `abs` in a snapshot, or null when the path is something else (or missing: findFileNode says which). */
async function folderTree(repo: Repository, snap: Snapshot, abs: string): Promise<Id | null> {
  const dir = abs.slice(0, abs.lastIndexOf('/')) || '/';
  const name = abs.slice(abs.lastIndexOf('/') + 1);
  let tree: Id;
  try {
    tree = (await findSubtree(repo, snap.tree, dir)).tree;
  } catch {
    return null;
  }
  const node = (await repo.loadTree(tree)).nodes.find((n) => n.name === name);
  return node?.type === 'dir' && node.subtree ? node.subtree : null;
}
