import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { copySnapshots } from '../../maintenance/copy.js';
import { findSnapshot, matchesFilter } from '../../repository/find.js';
import { shortId } from '../../repository/id.js';
import type { Snapshot } from '../../repository/snapshot.js';
import { formatBytes } from '../progress.js';
import type { Run } from '../program.js';

interface CopyFlags {
  fromRepo?: string;
  fromPasswordFile?: string;
  fromPasswordCommand?: string;
  host: string[];
  path: string[];
  tag: string[];
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

export function registerCopy(program: Command, run: Run): void {
  program
    .command('copy')
    .description('copy snapshots from another repository into this one (only the data it lacks)')
    .argument('[snapshots...]', 'snapshot ids (default: every snapshot that matches the filters)')
    .option('--from-repo <location>', 'the repository to copy from (env CAIRN_FROM_REPOSITORY)')
    .option('--from-password-file <file>', "the source repository's password file (env CAIRN_FROM_PASSWORD_FILE)")
    .option('--from-password-command <command>', "a command that prints the source repository's password (env CAIRN_FROM_PASSWORD_COMMAND)")
    .option('-H, --host <host>', 'only snapshots of this host, when no id is given (repeatable)', collect, [])
    .option('--path <path>', 'only snapshots that include this path, when no id is given (repeatable)', collect, [])
    .option('--tag <tags>', 'only snapshots with these tags (comma-separated; repeatable), when no id is given', collect, [])
    .action((ids: string[], o: CopyFlags) =>
      run(async (ctx) => {
        const from = o.fromRepo ?? process.env.CAIRN_FROM_REPOSITORY ?? process.env.RESTIC_FROM_REPOSITORY;
        if (!from) throw new CairnError('BAD_INPUT', 'no source repository: use --from-repo or set CAIRN_FROM_REPOSITORY');
        const dst = await ctx.openRepository();
        const src = await ctx.openOtherRepository(from, o.fromPasswordFile, o.fromPasswordCommand);
        await ctx.lock(src, false);
        await ctx.lock(dst, false);
        await Promise.all([src.loadIndex(), dst.loadIndex()]);
        let chosen: Snapshot[];
        if (ids.length > 0) {
          chosen = [];
          for (const id of ids) chosen.push(await findSnapshot(src, id));
        } else {
          chosen = (await src.listSnapshots()).filter((s) => matchesFilter(s, { hosts: o.host, tags: o.tag, paths: o.path }));
        }
        const r = await copySnapshots(src, dst, chosen, {
          signal: ctx.signal,
          onSnapshot: (e) => {
            if (ctx.opts.json) return;
            if (e.skipped) ctx.print(`snapshot ${shortId(e.source.id)} of ${e.source.paths.join(', ')} is already there, skipped`);
            else ctx.print(`snapshot ${shortId(e.source.id)} of ${e.source.paths.join(', ')} copied as ${shortId(e.copied!)}`);
          },
        });
        if (ctx.opts.json) ctx.json({ message_type: 'copy', copied: r.copied, skipped: r.skipped, blobs_copied: r.blobsCopied, bytes_copied: r.bytesCopied });
        else ctx.print(`copied ${r.copied.length} snapshots (${r.blobsCopied} blobs, ${formatBytes(r.bytesCopied)}), ${r.skipped.length} already there`);
      }),
    );
}
