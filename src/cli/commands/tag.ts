import { Command } from 'commander';
import { findSnapshots } from '../../repository/find.js';
import { shortId } from '../../repository/id.js';
import { changedTags, checkTagChange, flattenTags, retagSnapshot, type TagChange } from '../../maintenance/tag.js';
import type { Run } from '../program.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface TagFlags {
  set: string[];
  add: string[];
  remove: string[];
  host: string[];
  tag: string[];
  path: string[];
}

export function registerTag(program: Command, run: Run): void {
  program
    .command('tag [snapshots...]')
    .description('change the tags of snapshots (all snapshots the filters match when none is named)')
    .option('--set <tags>', 'replace the tags with these (comma-separated; may be repeated; "" for none)', collect, [])
    .option('--add <tags>', 'add these tags (comma-separated; may be repeated)', collect, [])
    .option('--remove <tags>', 'remove these tags (comma-separated; may be repeated)', collect, [])
    .option('--host <host>', 'only snapshots of this host', collect, [])
    .option('--tag <tags>', 'only snapshots with these tags (comma-separated: all of them)', collect, [])
    .option('--path <path>', 'only snapshots with this path', collect, [])
    .action((ids: string[], o: TagFlags) =>
      run(async (ctx) => {
        // `--set ""` gives no tags at all.
        const change: TagChange = { set: o.set.length > 0 ? flattenTags(o.set) : undefined, add: flattenTags(o.add), remove: flattenTags(o.remove) };
        checkTagChange(change);
        const repo = await ctx.openRepository();
        await ctx.lock(repo, true);
        const filter = { hosts: o.host, tags: o.tag, paths: o.path };
        const chosen = await findSnapshots(repo, ids, filter);
        const changed: { old: string; new: string }[] = [];
        for (const s of chosen) {
          if (ctx.signal.aborted) break;
          const tags = changedTags(s, change);
          if (!tags) continue;
          const id = await retagSnapshot(repo, s, tags);
          changed.push({ old: s.id, new: id });
          if (!ctx.opts.json) ctx.print(`${shortId(s.id)} -> ${shortId(id)}  [${tags.join(', ')}]`);
        }
        if (ctx.opts.json) ctx.json({ message_type: 'summary', changed_snapshots: changed.length, snapshots: changed });
        else ctx.print(changed.length === 0 ? 'no snapshots were modified' : `modified tags on ${changed.length} snapshots`);
      }),
    );
}
