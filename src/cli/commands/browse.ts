import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { findSnapshot, findSnapshots, matchesFilter, splitSnapshotRef } from '../../repository/find.js';
import { findSubtree } from '../../restorer/restorer.js';
import { shortId, type Id } from '../../repository/id.js';
import type { Repository } from '../../repository/repository.js';
import { snapshotOutput, type Snapshot } from '../../repository/snapshot.js';
import { groupSnapshots } from '../../maintenance/forget.js';
import { nodeToJSON, type Node } from '../../fs/node.js';
import { parseLocalTime, parseTime } from '../../fs/time.js';
import { buildExcluder } from '../../archiver/excludes.js';
import { goModeString } from '../../fs/filemode.js';
import { filterOf } from './restore.js';
import { describeLocation, findObjects, packPatterns, parseIdPatterns, type FoundObject, type ObjectPatterns } from '../../repository/find-objects.js';
import type { Run } from '../program.js';
import type { Context } from '../context.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

interface FilterFlags {
  host: string[];
  tag: string[];
  path: string[];
}

export function registerBrowse(program: Command, run: Run): void {
  program
    .command('snapshots [ids...]')
    .description('list snapshots')
    .option('-H, --host <host>', 'only snapshots of this host', collect, [])
    .option('--tag <tags>', 'only snapshots with these tags (comma-separated: all of them)', collect, [])
    .option('--path <path>', 'only snapshots that include this path', collect, [])
    .option('--latest <n>', 'only the last n snapshots of each host and paths')
    .option('-c, --compact', 'a compact table: no paths, one tag per line')
    .option('-g, --group-by <keys>', 'list in groups by host, paths and/or tags (comma-separated)')
    .action((ids: string[], o: FilterFlags & { latest?: string; compact?: boolean; groupBy?: string }) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        let snaps = ids.length > 0 ? await Promise.all(ids.map((i) => findSnapshot(repo, i))) : (await repo.listSnapshots()).filter((s) => matchesFilter(s, filterOf(o)));
        if (o.latest) {
          const n = Number(o.latest);
          if (!Number.isInteger(n) || n < 1) throw new CairnError('BAD_INPUT', `invalid --latest ${JSON.stringify(o.latest)}`);
          const groups = new Map<string, Snapshot[]>();
          for (const s of snaps) {
            const k = `${s.hostname}\0${[...s.paths].sort().join('\0')}`;
            groups.set(k, [...(groups.get(k) ?? []), s]);
          }
          snaps = [...groups.values()].flatMap((g) => g.slice(-n));
        }
        const groups = o.groupBy === undefined ? null : groupSnapshots(snaps, o.groupBy);
        if (ctx.opts.json) {
          if (!groups) ctx.json(snaps.map(snapshotOutput));
          else ctx.json(groups.map((g) => ({ group_key: { hostname: g.host ?? '', paths: g.paths, tags: g.tags }, snapshots: g.snapshots.map(snapshotOutput) })));
          return;
        }
        if (!groups) {
          ctx.write(snapshotTable(snaps, Boolean(o.compact)));
          return;
        }
        for (const g of groups) {
          const key = [g.host !== null ? `host [${g.host}]` : '', g.paths ? `paths [${g.paths.join(', ')}]` : '', g.tags ? `tags [${g.tags.join(', ')}]` : ''].filter(Boolean).join(', ');
          ctx.write(`snapshots for (${key}):\n${snapshotTable(g.snapshots, Boolean(o.compact))}`);
        }
      }),
    );

  program
    .command('ls <snapshot> [dirs...]')
    .description('list files in a snapshot')
    .option('-l, --long', 'long listing')
    .option('--recursive', 'list folders given as dirs recursively')
    .option('-H, --host <host>', 'with "latest": only snapshots of this host', collect, [])
    .option('--tag <tags>', 'with "latest": only snapshots with these tags', collect, [])
    .option('--path <path>', 'with "latest": only snapshots with this path', collect, [])
    .action((ref: string, dirs: string[], o: FilterFlags & { long?: boolean; recursive?: boolean }) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const snap = await findSnapshot(repo, ref, filterOf(o));
        await repo.loadIndex();
        const prefixes = dirs.map((d) => (d.startsWith('/') ? d : `/${d}`).replace(/\/+$/, '') || '/');
        const wanted = (p: string, depthOk: boolean): boolean => {
          if (prefixes.length === 0) return true;
          return prefixes.some((d) => p === d || (p.startsWith(d === '/' ? '/' : `${d}/`) && (o.recursive || depthOk)));
        };
        if (ctx.opts.json) ctx.json({ ...snapshotOutput(snap), struct_type: 'snapshot' });
        else ctx.print(`snapshot ${shortId(snap.id)} of [${snap.paths.join(' ')}] at ${snap.time}:`);
        await walkNodes(repo, snap.tree, '', (p, n, parentPath) => {
          const direct = prefixes.some((d) => parentPath === d || (d === '/' && parentPath === ''));
          if (!wanted(p, direct)) return;
          if (ctx.opts.json) ctx.json(lsNode(p, n));
          else ctx.write(o.long ? `${longLine(p, n)}\n` : `${p}\n`);
        }, ctx.signal);
      }),
    );

  program
    .command('find <patterns...>')
    .description("find files and folders in snapshots by pattern (restic's: `*.yml`, `cache`, `/etc/**/*.conf`)")
    .option('-s, --snapshot <id>', 'search this snapshot (may be repeated; default: all that the filters match)', collect, [])
    .option('-H, --host <host>', 'only snapshots of this host', collect, [])
    .option('--tag <tags>', 'only snapshots with these tags (comma-separated: all of them)', collect, [])
    .option('--path <path>', 'only snapshots with this path', collect, [])
    .option('-i, --ignore-case', 'ignore case')
    .option('-l, --long', 'long listing')
    .option('-O, --oldest <time>', 'only entries modified at or after this local time (2006-01-02, 2006-01-02 15:04 or 2006-01-02 15:04:05)')
    .option('-N, --newest <time>', 'only entries modified at or before this local time')
    .option('--blob', 'the patterns are ids (or their first hex digits) of data blobs: find the files that use them')
    .option('--tree', 'the patterns are ids (or prefixes) of trees: find the folders that are them')
    .option('--pack', 'the patterns are ids (or prefixes) of packs: find the files and folders whose blobs they hold')
    .option('--show-pack-id', 'with --blob, --tree or --pack: say which pack holds each object found, and where')
    .action((patterns: string[], o: FilterFlags & { snapshot: string[]; ignoreCase?: boolean; long?: boolean; oldest?: string; newest?: string; blob?: boolean; tree?: boolean; pack?: boolean; showPackId?: boolean }) =>
      run(async (ctx) => {
        const kinds = [o.blob && '--blob', o.tree && '--tree', o.pack && '--pack'].filter(Boolean);
        if (kinds.length > 1) throw new CairnError('BAD_INPUT', `${kinds.join(' and ')} cannot be used together: search one kind of id at a time`);
        if (o.showPackId && kinds.length === 0) throw new CairnError('BAD_INPUT', '--show-pack-id goes with --blob, --tree or --pack');
        if (kinds.length === 1) return findIds(ctx, patterns, o);
        let match: (p: string) => boolean;
        try {
          match = (await buildExcluder(o.ignoreCase ? { iexclude: patterns } : { exclude: patterns })).excluded;
        } catch (err) {
          throw new CairnError('BAD_INPUT', (err as Error).message.replace(/^invalid i?exclude pattern/, 'invalid pattern'));
        }
        const oldest = o.oldest === undefined ? undefined : parseLocalTime(o.oldest, '--oldest');
        const newest = o.newest === undefined ? undefined : parseLocalTime(o.newest, '--newest');
        const repo = await ctx.openRepository();
        const filter = filterOf(o);
        const snaps = await findSnapshots(repo, o.snapshot, filter);
        await repo.loadIndex();
        const found: { matches: Record<string, unknown>[]; hits: number; snapshot: Id }[] = [];
        for (const snap of snaps) {
          if (ctx.signal.aborted) throw new CairnError('INTERRUPTED', 'find interrupted');
          let hits = 0;
          const matches: Record<string, unknown>[] = [];
          await walkNodes(repo, snap.tree, '', (p, n) => {
            if (!match(p)) return;
            if (oldest !== undefined || newest !== undefined) {
              const t = parseTime(n.mtime);
              if ((oldest !== undefined && t < oldest) || (newest !== undefined && t > newest)) return;
            }
            hits++;
            if (ctx.opts.json) {
              matches.push(findNode(p, n));
              return;
            }
            if (hits === 1) {
              if (found.length > 0) ctx.write('\n');
              ctx.print(`Found matching entries in snapshot ${shortId(snap.id)} from ${snap.time.slice(0, 19).replace('T', ' ')}`);
            }
            ctx.write(o.long ? `${longLine(p, n)}\n` : `${p}\n`);
          }, ctx.signal);
          if (hits > 0) found.push({ matches, hits, snapshot: snap.id });
        }
        if (ctx.opts.json) ctx.json(found);
      }),
    );

  program
    .command('diff <a> <b>')
    .description('show differences between two snapshots')
    .option('--metadata', 'also show metadata-only changes')
    .action((a: string, b: string, o: { metadata?: boolean }) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const sa = await findSnapshot(repo, splitSnapshotRef(a).ref);
        const sb = await findSnapshot(repo, splitSnapshotRef(b).ref);
        await repo.loadIndex();
        const ta = (await findSubtree(repo, sa.tree, splitSnapshotRef(a).subPath)).tree;
        const tb = (await findSubtree(repo, sb.tree, splitSnapshotRef(b).subPath)).tree;
        if (!ctx.opts.json) ctx.print(`comparing snapshot ${shortId(sa.id)} to ${shortId(sb.id)}:\n`);
        const stats = { added: 0, removed: 0, changed: 0 };
        const emit = (mod: string, p: string): void => {
          if (mod === '+') stats.added++;
          else if (mod === '-') stats.removed++;
          else stats.changed++;
          if (ctx.opts.json) ctx.json({ message_type: 'change', path: p, modifier: mod });
          else ctx.write(`${mod}    ${p}\n`);
        };
        await diffTrees(repo, ta, tb, '', emit, Boolean(o.metadata));
        if (ctx.opts.json) ctx.json({ message_type: 'statistics', source_snapshot: sa.id, target_snapshot: sb.id, ...stats });
        else ctx.print(`\nFiles/dirs: ${stats.added} added, ${stats.removed} removed, ${stats.changed} changed`);
      }),
    );
}

/** Every node below `tree`, depth first, a folder before its contents; an interrupt stops it at the next folder. */
/** `find --blob/--tree/--pack`, printed as restic prints it (with --json: one array). */
async function findIds(ctx: Context, patterns: string[], o: FilterFlags & { snapshot: string[]; blob?: boolean; tree?: boolean; pack?: boolean; showPackId?: boolean }): Promise<void> {
  const ids = parseIdPatterns(patterns, o.pack ? 'pack id' : o.tree ? 'tree id' : 'blob id');
  const repo = await ctx.openRepository();
  const snaps = await findSnapshots(repo, o.snapshot, filterOf(o));
  await repo.loadIndex();
  const want: ObjectPatterns = o.pack ? await packPatterns(repo, ids) : o.tree ? { blobs: [], trees: ids } : { blobs: ids, trees: [] };
  const json: Record<string, unknown>[] = [];
  const found = new Map<string, FoundObject>();
  const locate = (f: FoundObject) => repo.index.lookup(f.type, f.id);
  await findObjects(
    repo,
    snaps,
    want,
    (f) => {
      found.set(`${f.type}:${f.id}`, f);
      if (ctx.opts.json) {
        json.push({
          object_type: f.type === 'tree' ? 'tree' : 'blob',
          id: f.id,
          path: f.path,
          ...(f.parentTree && { parent_tree: f.parentTree }),
          snapshot: f.snapshot.id,
          time: f.snapshot.time,
          ...(o.showPackId && { pack_id: locate(f)?.packId ?? null }),
        });
        return;
      }
      const when = `${shortId(f.snapshot.id)} (${f.snapshot.time.slice(0, 19).replace('T', ' ')})`;
      if (f.type === 'tree') ctx.write(`Found tree ${f.id}\n ... path ${f.path}\n ... in snapshot ${when}\n`);
      else ctx.write(`Found blob ${f.id}\n ... in file ${f.path}\n     (tree ${f.parentTree})\n ... in snapshot ${when}\n`);
    },
    ctx.signal,
  );
  if (ctx.opts.json) {
    ctx.json(json);
    return;
  }
  if (!o.showPackId) return;
  for (const f of [...found.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
    const loc = locate(f);
    if (!loc) ctx.write(`Note: no pack in the index holds ${f.type === 'tree' ? 'tree' : 'blob'} ${f.id}\n`);
    else ctx.write(`Object belongs to pack ${loc.packId}\n ... Pack ${shortId(loc.packId)}: ${describeLocation(f.id, loc)}\n`);
  }
}

async function walkNodes(repo: Repository, tree: Id, dir: string, fn: (p: string, n: Node, parent: string) => void, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new CairnError('INTERRUPTED', 'interrupted');
  for (const n of (await repo.loadTree(tree)).nodes) {
    const p = `${dir}/${n.name}`;
    fn(p, n, dir);
    if (n.type === 'dir' && n.subtree) await walkNodes(repo, n.subtree, p, fn, signal);
  }
}

function lsNode(p: string, n: Node): Record<string, unknown> {
  const o: Record<string, unknown> = { name: n.name, type: n.type, path: p, uid: n.uid, gid: n.gid };
  if (n.type === 'file') o.size = n.size ?? 0;
  if (n.mode) {
    o.mode = n.mode;
    o.permissions = goModeString(n.mode);
  }
  o.mtime = n.mtime;
  o.atime = n.atime;
  o.ctime = n.ctime;
  o.struct_type = 'node';
  return o;
}

/** A match as restic's find prints it in JSON: path and permissions, then the node's fields without name, inode, xattrs, device, content and subtree. */
function findNode(p: string, n: Node): Record<string, unknown> {
  const { name: _name, inode: _inode, extended_attributes: _xattrs, device: _device, content: _content, subtree: _subtree, ...rest } = JSON.parse(nodeToJSON(n)) as Record<string, unknown>;
  const o: Record<string, unknown> = { path: p };
  if (n.mode) o.permissions = goModeString(n.mode);
  return { ...o, ...rest };
}

/**
 * restic's table of snapshots: ID, time, host, tags and paths, each path on a line of its own (a
 * blank line after a snapshot of several lines); compact: no paths, each tag on a line of its own.
 */
function snapshotTable(snaps: Snapshot[], compact: boolean): string {
  const head = compact ? ['ID', 'Time', 'Host', 'Tags'] : ['ID', 'Time', 'Host', 'Tags', 'Paths'];
  const rows = snaps.map((s) => {
    const tags = s.tags ?? [];
    const lines = compact ? [tags.join('\n')] : [tags.join(','), s.paths.join('\n')];
    return [shortId(s.id), s.time.slice(0, 19).replace('T', ' '), s.hostname ?? '', ...lines].map((c) => c.split('\n'));
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => Math.max(...r[i].map((l) => l.length)))));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  const rule = '-'.repeat(widths.reduce((a, b) => a + b + 2, -2));
  let out = `${line(head)}\n${rule}\n`;
  rows.forEach((r, k) => {
    const height = Math.max(...r.map((c) => c.length));
    for (let i = 0; i < height; i++) out += `${line(r.map((c) => c[i] ?? ''))}\n`;
    if (height > 1 && !compact && k < rows.length - 1) out += '\n';
  });
  return `${out}${rule}\n${snaps.length} snapshots\n`;
}

function longLine(p: string, n: Node): string {
  const types: Record<string, string> = { dir: 'd', symlink: 'L', dev: 'D', chardev: 'c', fifo: 'p', socket: 'S', file: '-' };
  const t = types[n.type] ?? '?';
  const perm = (n.mode ?? 0) & 0o777;
  const rwx = [6, 3, 0].map((s) => ['r', 'w', 'x'].map((c, i) => ((perm >> (s + 2 - i)) & 1 ? c : '-')).join('')).join('');
  const size = String(n.size ?? 0).padStart(10);
  const link = n.type === 'symlink' ? ` -> ${n.linktarget}` : '';
  return `${t}${rwx} ${String(n.user ?? n.uid).padEnd(8)} ${String(n.group ?? n.gid).padEnd(8)} ${size} ${n.mtime.slice(0, 19).replace('T', ' ')} ${p}${link}`;
}

async function diffTrees(repo: Repository, a: Id | undefined, b: Id | undefined, dir: string, emit: (m: string, p: string) => void, metadata: boolean): Promise<void> {
  if (a === b) return;
  const na = new Map((a ? (await repo.loadTree(a)).nodes : []).map((n) => [n.name, n]));
  const nb = new Map((b ? (await repo.loadTree(b)).nodes : []).map((n) => [n.name, n]));
  const names = [...new Set([...na.keys(), ...nb.keys()])].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  for (const name of names) {
    const x = na.get(name);
    const y = nb.get(name);
    const p = `${dir}/${name}`;
    const shown = (n: Node): string => (n.type === 'dir' ? `${p}/` : p);
    if (!x) {
      emit('+', shown(y!));
      if (y!.type === 'dir') await diffTrees(repo, undefined, y!.subtree, p, emit, metadata);
    } else if (!y) {
      emit('-', shown(x));
      if (x.type === 'dir') await diffTrees(repo, x.subtree, undefined, p, emit, metadata);
    } else if (x.type !== y.type) {
      emit('T', shown(y));
    } else if (x.type === 'dir') {
      await diffTrees(repo, x.subtree, y.subtree, p, emit, metadata);
    } else {
      const contentChanged = (x.content ?? []).join() !== (y.content ?? []).join() || x.linktarget !== y.linktarget;
      if (contentChanged) emit('M', p);
      else if (metadata && (x.mode !== y.mode || x.mtime !== y.mtime || x.uid !== y.uid || x.gid !== y.gid)) emit('U', p);
    }
  }
}

