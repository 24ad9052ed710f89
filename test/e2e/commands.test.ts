import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, runCommand, tempDir, type TestRepo } from '../support/tools.js';
import { seededBytes, textBytes } from '../support/trees.js';

describe('snapshots, ls, diff, stats, cat, key', () => {
  let repo: TestRepo;
  let src: string;
  let first: string;
  let second: string;

  beforeAll(async () => {
    repo = await makeRepoPaths();
    src = await tempDir();
    await fs.mkdir(path.join(src, 'docs/deep'), { recursive: true });
    await fs.writeFile(path.join(src, 'docs/a.txt'), 'alpha\n');
    await fs.writeFile(path.join(src, 'docs/deep/b.txt'), 'beta\n');
    await fs.writeFile(path.join(src, 'gone.txt'), 'soon gone\n');
    await fs.writeFile(path.join(src, 'big.bin'), seededBytes(8, 1_500_000));
    ok(await cairn(repo, ['init']), 'init');
    first = JSON.parse(ok(await cairn(repo, ['--json', 'backup', '--tag', 'one,daily', src]), 'backup 1').out.trim().split('\n').pop()!).snapshot_id;
    await fs.rm(path.join(src, 'gone.txt'));
    await fs.writeFile(path.join(src, 'docs/a.txt'), 'alpha changed\n');
    await fs.writeFile(path.join(src, 'new.txt'), 'new\n');
    second = JSON.parse(ok(await cairn(repo, ['--json', 'backup', '--tag', 'two', '--host', 'other', src]), 'backup 2').out.trim().split('\n').pop()!).snapshot_id;
  });

  it('filters snapshots by tag, host and path, and resolves prefixes and latest', async () => {
    const byTag = JSON.parse(ok(await cairn(repo, ['snapshots', '--json', '--tag', 'daily']), 'snapshots').out) as { id: string }[];
    expect(byTag.map((s) => s.id)).toEqual([first]);
    const byHost = JSON.parse(ok(await cairn(repo, ['snapshots', '--json', '--host', 'other']), 'snapshots').out) as { id: string }[];
    expect(byHost.map((s) => s.id)).toEqual([second]);
    const byPath = JSON.parse(ok(await cairn(repo, ['snapshots', '--json', '--path', src]), 'snapshots').out) as unknown[];
    expect(byPath).toHaveLength(2);
    const table = ok(await cairn(repo, ['snapshots']), 'snapshots table').out;
    expect(table).toContain(first.slice(0, 8));
    expect(table).toContain('2 snapshots');
    const ls = ok(await cairn(repo, ['ls', first.slice(0, 6), `${src}/docs`]), 'ls prefix').out;
    expect(ls).toContain(`${src}/docs/a.txt`);
    expect(ls).not.toContain(`${src}/docs/deep/b.txt`);
    const rec = ok(await cairn(repo, ['ls', '--recursive', 'latest', `${src}/docs`]), 'ls recursive').out;
    expect(rec).toContain(`${src}/docs/deep/b.txt`);
    const long = ok(await cairn(repo, ['ls', '-l', 'latest', src]), 'ls -l').out;
    expect(long).toMatch(/-rw-r--r-- .*\/new\.txt/);
  });

  it.runIf(HAVE_RESTIC)('find prints what restic find prints, by pattern, case, snapshot and time', async () => {
    type Group = { snapshot: string; hits: number; matches: { path: string }[] };
    const bySnapshot = (out: string): Group[] => (JSON.parse(out) as Group[]).sort((a, b) => a.snapshot.localeCompare(b.snapshot));
    for (const args of [['a.txt'], ['*.TXT', '-i'], ['docs'], [`${src}/docs/*`], ['*.bin', 'b.txt'], ['**/deep/*'], ['nothing-like-it'], ['-s', first.slice(0, 8), '*.txt'], ['--host', 'other', '*.txt'], ['--newest', '2000-01-01', '*'], ['--oldest', '2000-01-01 10:00', 'new.txt']]) {
      const ours = ok(await cairn(repo, ['--json', 'find', ...args]), `find ${args.join(' ')}`).out;
      const theirs = ok(await restic(repo, ['--json', 'find', ...args]), `restic find ${args.join(' ')}`).out;
      expect(bySnapshot(ours), args.join(' ')).toEqual(bySnapshot(theirs));
    }
    const hits = bySnapshot(ok(await cairn(repo, ['--json', 'find', '*.txt'], {}), 'find').out);
    expect(hits.map((g) => g.hits)).toEqual([3, 3]);
    const text = ok(await cairn(repo, ['find', '-s', second, 'docs']), 'find text').out;
    expect(text).toBe(ok(await restic(repo, ['find', '-s', second, 'docs']), 'restic find text').out);
    expect(text).toContain(`${src}/docs/deep/b.txt`);
    for (const [bad, message] of [[['[unclosed'], 'invalid pattern'], [['--oldest', '2020-02-30', 'x'], 'invalid --oldest "2020-02-30"']] as const) {
      const r = await cairn(repo, ['find', ...bad]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(message);
    }
  });

  it.runIf(HAVE_RESTIC)('find --blob, --tree and --pack print what restic prints; tree packs and roots are found too', async () => {
    const blobs = ok(await cairn(repo, ['list', 'blobs']), 'list blobs').out.trim().split('\n').map((l) => l.split(' ') as ['data' | 'tree', string]);
    const data = blobs.filter(([t]) => t === 'data').map(([, id]) => id);
    const trees = blobs.filter(([t]) => t === 'tree').map(([, id]) => id);
    const index = JSON.parse(ok(await cairn(repo, ['cat', 'index', ok(await cairn(repo, ['list', 'index']), 'list index').out.trim().split('\n')[0]]), 'cat index').out) as { packs: { id: string; blobs: { type: string; id: string }[] }[] };
    const dataPack = index.packs.find((p) => p.blobs.every((b) => b.type === 'data'))!.id;
    const rootTrees = (JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as { tree: string }[]).map((s) => s.tree);
    const runs = [
      ['--blob', ...data.map((d, i) => (i === 1 ? d : d.slice(0, 8)))],
      // One tree at a time: restic stops looking once it has made as many finds as it was given trees.
      ...trees.filter((t) => !rootTrees.includes(t)).slice(0, 2).map((t) => ['--tree', t.slice(0, 8)]),
      ['--pack', dataPack.slice(0, 8)],
      ['--pack', dataPack],
      ['--blob', '0000000000000000'],
      ['-s', second.slice(0, 8), '--blob', ...data.map((d) => d.slice(0, 8))],
      ['--show-pack-id', '--blob', data[0]],
    ];
    // restic takes snapshots in the order the repository lists them: compare each snapshot's findings, in their order.
    const textBySnapshot = (out: string) => {
      const groups: Record<string, string[]> = {};
      const [found, tail] = out.split(/(?=^Object belongs to pack)/m).length > 1 ? [out.slice(0, out.indexOf('Object belongs')), out.slice(out.indexOf('Object belongs'))] : [out, ''];
      for (const rec of found.split(/(?=^Found )/m).filter(Boolean)) (groups[/ in snapshot (\S+)/.exec(rec)![1]] ??= []).push(rec);
      return { groups, tail };
    };
    const jsonBySnapshot = (out: string) => {
      const groups: Record<string, unknown[]> = {};
      for (const f of JSON.parse(out) as { snapshot: string }[]) (groups[f.snapshot] ??= []).push(f);
      return groups;
    };
    for (const args of runs) {
      // Without --json too: the text is restic's, line for line.
      expect(textBySnapshot(ok(await cairn(repo, ['find', ...args]), `find ${args.join(' ')}`).out), args.join(' ')).toEqual(textBySnapshot(ok(await restic(repo, ['find', ...args]), `restic find ${args.join(' ')}`).out));
      // JSON for one search of each kind.
      if (!['--blob', '--tree', '--pack'].includes(args[0]) || (args[0] === '--pack' && args[1].length === 64)) continue;
      expect(jsonBySnapshot(ok(await cairn(repo, ['--json', 'find', ...args]), 'find --json').out), args.join(' ')).toEqual(jsonBySnapshot(ok(await restic(repo, ['--json', 'find', ...args]), 'restic find --json').out));
    }
    // Any prefix finds what its id finds (restic takes only 8 digits or all 64).
    expect(ok(await cairn(repo, ['find', '--blob', data[0].slice(0, 11)]), 'find 11 digits').out).toBe(ok(await cairn(repo, ['find', '--blob', data[0]]), 'find id').out);
    // A pack of trees names the folders (and snapshot roots) it holds; restic finds nothing there.
    const treePack = index.packs.find((p) => p.blobs.every((b) => b.type === 'tree'))!;
    const found = JSON.parse(ok(await cairn(repo, ['--json', 'find', '--pack', treePack.id]), 'find tree pack').out) as { object_type: string; id: string; path: string }[];
    expect(found.length).toBeGreaterThan(0);
    expect(found.every((f) => f.object_type === 'tree' && treePack.blobs.some((b) => b.id === f.id))).toBe(true);
    const roots = JSON.parse(ok(await cairn(repo, ['--json', 'find', '--tree', ...trees]), 'find roots').out) as { path: string; snapshot: string }[];
    expect(roots.filter((r) => r.path === '/').map((r) => r.snapshot).sort()).toEqual([first, second].sort());
    // With --json --show-pack-id each object names its pack.
    const withPack = JSON.parse(ok(await cairn(repo, ['--json', 'find', '--show-pack-id', '--pack', dataPack]), 'find --show-pack-id --json').out) as { pack_id: string }[];
    expect(withPack.length).toBeGreaterThan(0);
    expect(withPack.every((f) => f.pack_id === dataPack)).toBe(true);
    for (const [bad, code, message] of [
      [['--pack', '1'.repeat(64)], 1, `unable to find pack(s): [${'1'.repeat(64)}]`],
      [['--blob', 'xyz'], 1, 'invalid blob id "xyz"'],
      [['--blob', '--tree', 'ab'], 1, '--blob and --tree cannot be used together'],
      [['--show-pack-id', 'a.txt'], 1, '--show-pack-id goes with --blob, --tree or --pack'],
    ] as const) {
      const r = await cairn(repo, ['find', ...bad]);
      expect(r.code, bad.join(' ')).toBe(code);
      expect(r.stderr).toContain(message);
    }
  });

  it.runIf(HAVE_RESTIC)('list prints the ids restic list prints', async () => {
    for (const t of ['blobs', 'packs', 'index', 'snapshots', 'keys']) {
      const ours = ok(await cairn(repo, ['list', t]), `list ${t}`).out.trim().split('\n').sort();
      expect(ours.length, t).toBeGreaterThan(0);
      expect(ours, t).toEqual(ok(await restic(repo, ['list', t]), `restic list ${t}`).out.trim().split('\n').sort());
    }
    const bad = await cairn(repo, ['list', 'things']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid type "things"');
  });

  it('version prints the version, as text and as JSON, without a repository', async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string };
    const env = { CAIRN_REPOSITORY: '', CAIRN_PASSWORD_FILE: '' };
    expect(ok(await cairn(repo, ['version'], { env }), 'version').out).toBe(`cairn ${pkg.version} on node ${process.version} ${process.platform}/${process.arch}\n`);
    expect(JSON.parse(ok(await cairn(repo, ['--json', 'version'], { env }), 'version --json').out)).toMatchObject({ message_type: 'version', version: pkg.version });
  });

  it('diff names added, removed and changed files', async () => {
    const out = ok(await cairn(repo, ['diff', first, second]), 'diff').out;
    expect(out).toContain(`+    ${src}/new.txt`);
    expect(out).toContain(`-    ${src}/gone.txt`);
    expect(out).toContain(`M    ${src}/docs/a.txt`);
    expect(out).not.toContain('big.bin');
    expect(out).toContain('1 added, 1 removed, 1 changed');
  });

  it('stats counts files and raw data', async () => {
    const s = JSON.parse(ok(await cairn(repo, ['--json', 'stats', 'latest']), 'stats').out) as { total_size: number; total_file_count: number };
    expect(s.total_size).toBe(1_500_000 + 'alpha changed\n'.length + 'beta\n'.length + 'new\n'.length);
    const raw = JSON.parse(ok(await cairn(repo, ['--json', 'stats', '--mode', 'raw-data']), 'stats raw').out) as { total_size: number; total_blob_count: number };
    expect(raw.total_blob_count).toBeGreaterThan(4);
    expect(raw.total_size).toBeGreaterThan(1_500_000);
    expect((await cairn(repo, ['stats', '--mode', 'bogus'])).code).toBe(1);
  });

  it('cat prints config, snapshots, trees and blobs', async () => {
    const config = JSON.parse(ok(await cairn(repo, ['cat', 'config']), 'cat config').out) as { version: number; chunker_polynomial: string };
    expect(config.version).toBe(2);
    const snap = JSON.parse(ok(await cairn(repo, ['cat', 'snapshot', first]), 'cat snapshot').out) as { tree: string; tags: string[]; summary: { files_new: number } };
    expect(snap.tags).toEqual(['one', 'daily']);
    expect(snap.summary.files_new).toBe(4);
    const tree = JSON.parse(ok(await cairn(repo, ['cat', 'tree', snap.tree]), 'cat tree').out) as { nodes: { name: string }[] };
    expect(tree.nodes.map((n) => n.name)).toEqual([src.split('/')[1]]);
    if (HAVE_RESTIC) {
      expect(JSON.parse(ok(await restic(repo, ['cat', 'config']), 'restic cat config').out)).toEqual(config);
      const rmaster = JSON.parse(ok(await restic(repo, ['cat', 'masterkey']), 'restic cat masterkey').out);
      expect(JSON.parse(ok(await cairn(repo, ['cat', 'masterkey']), 'cat masterkey').out)).toEqual(rmaster);
    }
    expect((await cairn(repo, ['cat', 'nonsense'])).stderr).toMatch(/unknown type/);
  });

  it('restores with --include and --exclude, and SNAPSHOT:PATH', async () => {
    const t1 = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', t1, '--include', '*.txt', '--exclude', 'deep']), 'restore include');
    expect(await fs.readFile(path.join(t1, src, 'docs/a.txt'), 'utf8')).toBe('alpha changed\n');
    await expect(fs.access(path.join(t1, src, 'docs/deep'))).rejects.toThrow();
    await expect(fs.access(path.join(t1, src, 'big.bin'))).rejects.toThrow();
    const t2 = await tempDir();
    ok(await cairn(repo, ['restore', `${first}:${src}/docs`, '--target', t2, '--sparse']), 'restore subpath (with restic\'s --sparse)');
    expect(await fs.readFile(path.join(t2, 'a.txt'), 'utf8')).toBe('alpha\n');
    expect(await fs.readFile(path.join(t2, 'deep/b.txt'), 'utf8')).toBe('beta\n');
  });

  it.runIf(HAVE_RESTIC)('snapshots --group-by lists the groups restic lists; every path and tag shows in the tables', async () => {
    const extra = await tempDir();
    await fs.writeFile(path.join(extra, 'x'), 'x');
    ok(await cairn(repo, ['backup', '--tag', 'one,two', '--host', 'multi', src, extra]), 'two paths');
    type Group = { group_key: { hostname: string; paths: string[] | null; tags: string[] | null }; snapshots: { id: string }[] };
    const groups = (out: string) =>
      (JSON.parse(out) as Group[]).map((g) => JSON.stringify([g.group_key, g.snapshots.map((x) => x.id).sort()])).sort();
    for (const by of ['host', 'paths', 'tags', 'host,paths', 'host,paths,tags']) {
      const ours = groups(ok(await cairn(repo, ['snapshots', '--json', '--group-by', by]), `group by ${by}`).out);
      expect(ours, by).toEqual(groups(ok(await restic(repo, ['snapshots', '--json', '--group-by', by]), `restic group by ${by}`).out));
    }
    const table = ok(await cairn(repo, ['snapshots', '--host', 'multi']), 'table').out;
    expect(table).toMatch(new RegExp(`one,two +${src}\\n +${extra}\\n`));
    const compact = ok(await cairn(repo, ['snapshots', '--compact', '--host', 'multi']), 'compact').out;
    expect(compact).toMatch(/ one\n +two\n/);
    expect(compact).not.toContain(src);
    const grouped = ok(await cairn(repo, ['snapshots', '--group-by', 'host']), 'grouped').out;
    expect(grouped).toContain('snapshots for (host [multi]):');
    expect(grouped).toContain('snapshots for (host [other]):');
    const bad = await cairn(repo, ['snapshots', '--group-by', 'color']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid --group-by "color"');
  });

  it('manages keys: add, list, passwd and remove', async () => {
    const r = await makeRepoPaths('first password');
    ok(await cairn(r, ['init']), 'init');
    const newPw = path.join(path.dirname(r.passwordFile), 'new-password');
    await fs.writeFile(newPw, 'second password\n');
    ok(await cairn(r, ['key', 'add', '--new-password-file', newPw]), 'key add');
    const keys = JSON.parse(ok(await cairn(r, ['--json', 'key', 'list']), 'key list').out) as { current: boolean; id: string }[];
    expect(keys).toHaveLength(2);
    ok(await cairn(r, ['snapshots'], { env: { CAIRN_PASSWORD_FILE: newPw } }), 'open with second password');
    const other = keys.find((k) => !k.current)!;
    ok(await cairn(r, ['key', 'remove', other.id]), 'key remove');
    expect((await cairn(r, ['snapshots'], { env: { CAIRN_PASSWORD_FILE: newPw } })).code).toBe(12);
    const current = keys.find((k) => k.current)!;
    expect((await cairn(r, ['key', 'remove', current.id])).stderr).toMatch(/currently used/);
    ok(await cairn(r, ['key', 'passwd', '--new-password-file', newPw]), 'key passwd');
    expect((await cairn(r, ['snapshots'])).code).toBe(12);
    ok(await cairn(r, ['snapshots'], { env: { CAIRN_PASSWORD_FILE: newPw } }), 'new password works');
    if (HAVE_RESTIC) ok(await restic({ ...r, env: { ...r.env, RESTIC_PASSWORD_FILE: newPw } }, ['snapshots']), 'restic opens the new key');
  });
});

describe('backup options', () => {
  it('applies --exclude, --iexclude and --exclude-file, and records excludes in the snapshot', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (const f of ['keep.txt', 'skip.log', 'SKIP.TMP', 'cache/x', 'sub/cache/y', 'sub/keep.md']) {
      await fs.mkdir(path.dirname(path.join(src, f)), { recursive: true });
      await fs.writeFile(path.join(src, f), f);
    }
    const exFile = path.join(await tempDir(), 'excludes');
    await fs.writeFile(exFile, '# comment\ncache\n');
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src, '--exclude', '*.log', '--iexclude', '*.tmp', '--exclude-file', exFile]), 'backup');
    const files = ok(await cairn(repo, ['ls', 'latest']), 'ls').out.split('\n').filter((l) => l.startsWith(`${src}/`)).map((l) => l.slice(src.length + 1)).sort();
    expect(files).toEqual(['keep.txt', 'sub', 'sub/keep.md']);
    const snap = JSON.parse(ok(await cairn(repo, ['cat', 'snapshot', 'latest']), 'cat').out) as { excludes: string[] };
    expect(snap.excludes).toEqual(['*.log']);
    expect((await cairn(repo, ['backup', src, '--exclude', '[unclosed'])).code).toBe(1);
  });

  it.runIf(HAVE_RESTIC)('leaves out tagged folders and large files as restic does: --exclude-caches, --exclude-if-present, --exclude-larger-than', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const tag = 'Signature: 8a477f597d28d172789f06886806bc55';
    const files: Record<string, string | Buffer> = {
      'keep.txt': 'keep',
      'cache/CACHEDIR.TAG': `${tag}\nmore`,
      'cache/junk': 'junk',
      'cache/sub/deep': 'deep',
      'fake/CACHEDIR.TAG': 'Signature: not the one',
      'fake/kept': 'kept',
      'short/CACHEDIR.TAG': 'Signature',
      'short/kept': 'kept',
      'marked/.nobackup': '',
      'marked/gone': 'gone',
      'marked/deeper/gone': 'gone',
      'headed/.skip': 'SKIP ME please',
      'headed/gone': 'gone',
      'unheaded/.skip': 'keep me',
      'unheaded/kept': 'kept',
      'both/.nobackup': '',
      'both/CACHEDIR.TAG': tag,
      'both/gone': 'gone',
      'big.bin': seededBytes(21, 300_000),
      'small.bin': seededBytes(22, 100_000),
      'nested/big.bin': seededBytes(23, 200_001),
      'nested/edge.bin': seededBytes(24, 200_000),
    };
    for (const [f, content] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(src, f)), { recursive: true });
      await fs.writeFile(path.join(src, f), content);
    }
    await fs.symlink('big.bin', path.join(src, 'link'));
    const flags = ['--exclude-caches', '--exclude-if-present', '.nobackup', '--exclude-if-present', '.skip:SKIP ME', '--exclude-larger-than', '200000'];
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src, ...flags]), 'cairn backup');
    ok(await restic(repo, ['backup', '--host', 'restic', src, ...flags]), 'restic backup');
    const listed = (out: string): string[] =>
      out.trim().split('\n').slice(1).map((l) => (JSON.parse(l) as { path: string }).path).filter((p) => p.startsWith(`${src}/`)).map((p) => p.slice(src.length + 1)).sort();
    const ours = listed(ok(await cairn(repo, ['ls', '--json', 'latest', '--host', os.hostname()]), 'ls').out);
    const theirs = listed(ok(await restic(repo, ['ls', '--json', 'latest', '--host', 'restic']), 'restic ls').out);
    expect(ours).toEqual(theirs);
    expect(ours).toEqual([
      'both', 'cache', 'cache/CACHEDIR.TAG', 'fake', 'fake/CACHEDIR.TAG', 'fake/kept', 'headed', 'headed/.skip', 'keep.txt', 'link', 'marked', 'marked/.nobackup',
      'nested', 'nested/edge.bin', 'short', 'short/CACHEDIR.TAG', 'short/kept', 'small.bin', 'unheaded', 'unheaded/.skip', 'unheaded/kept',
    ]);
    // A source inside a tagged folder and a source file over the limit are left out too (the
    // folders leading to them stay).
    const sources = [path.join(src, 'marked/deeper'), path.join(src, 'big.bin'), path.join(src, 'keep.txt')];
    const inside = ok(await cairn(repo, ['--json', 'backup', '--host', 'sources', ...sources, ...flags]), 'sources').out;
    expect(JSON.parse(inside.trim().split('\n').pop()!)).toMatchObject({ message_type: 'summary', total_files_processed: 1 });
    ok(await restic(repo, ['backup', '--host', 'restic-sources', ...sources, ...flags]), 'restic sources');
    const oursSources = listed(ok(await cairn(repo, ['ls', '--json', 'latest', '--host', 'sources']), 'ls').out);
    expect(oursSources).toEqual(listed(ok(await restic(repo, ['ls', '--json', 'latest', '--host', 'restic-sources']), 'restic ls').out));
    expect(oursSources).toEqual(['keep.txt', 'marked']);
    for (const bad of [['--exclude-if-present', ''], ['--exclude-if-present', ':header'], ['--exclude-larger-than', 'lots']]) {
      const r = await cairn(repo, ['backup', src, ...bad]);
      expect(r.code, bad.join(' ')).toBe(1);
      expect(r.stderr).toContain(`invalid ${bad[0]}`);
    }
  });

  it('backup --dry-run reports what the real backup then adds, and leaves the repository and the cache untouched', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'same'), seededBytes(31, 50_000));
    await fs.writeFile(path.join(src, 'changing'), seededBytes(32, 50_000));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'first backup');
    await fs.writeFile(path.join(src, 'changing'), seededBytes(33, 70_000));
    await fs.writeFile(path.join(src, 'new'), seededBytes(34, 3_000_000));
    await fs.writeFile(path.join(src, 'copy-of-new'), seededBytes(34, 3_000_000));
    const files = async (dir: string): Promise<string[]> => {
      const out: string[] = [];
      const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return [];
        throw err;
      });
      for (const e of entries) {
        if (!e.isFile()) continue;
        const p = path.join(e.parentPath, e.name);
        const st = await fs.stat(p);
        out.push(`${path.relative(dir, p)} ${st.size} ${st.mtimeMs}`);
      }
      return out.sort();
    };
    const repoBefore = await files(repo.dir);
    const cacheBefore = await files(repo.env.CAIRN_CACHE_DIR!);
    const dry = JSON.parse(ok(await cairn(repo, ['--json', 'backup', '--dry-run', src]), 'dry run').out.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(dry).toMatchObject({ message_type: 'summary', dry_run: true, files_new: 2, files_changed: 1, files_unmodified: 1 });
    expect(dry.snapshot_id).toBeUndefined();
    expect(await files(repo.dir)).toEqual(repoBefore);
    expect(await files(repo.env.CAIRN_CACHE_DIR!)).toEqual(cacheBefore);
    const text = ok(await cairn(repo, ['backup', '-n', src]), 'dry run text').out;
    expect(text).toMatch(/Would add to the repository: /);
    expect(text).not.toMatch(/snapshot [0-9a-f]{8} saved/);

    const real = JSON.parse(ok(await cairn(repo, ['--json', 'backup', src]), 'real backup').out.trim().split('\n').pop()!) as Record<string, unknown>;
    for (const k of ['files_new', 'files_changed', 'files_unmodified', 'dirs_new', 'dirs_changed', 'dirs_unmodified', 'data_blobs', 'tree_blobs', 'data_added', 'total_files_processed', 'total_bytes_processed']) {
      expect(dry[k], k).toBe(real[k]);
    }
    // Compression draws no random bytes, encryption's overhead is fixed: the stored size is the same too.
    expect(dry.data_added_packed).toBe(real.data_added_packed);
    const r = await cairn(repo, ['backup', '--dry-run', '--db', 'sqlite:/nonexistent.db']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--dry-run is not available with --db');
  });

  it.runIf(HAVE_RESTIC)('--ignore-inode and --ignore-ctime take a file as unchanged as restic does, with its node made afresh; --time sets the snapshot time', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const moved = path.join(src, 'moved');
    const chmodded = path.join(src, 'chmodded');
    await fs.writeFile(moved, seededBytes(61, 100_000));
    await fs.writeFile(chmodded, seededBytes(62, 100_000), { mode: 0o644 });
    await fs.writeFile(path.join(src, 'untouched'), seededBytes(63, 100_000));
    ok(await cairn(repo, ['init']), 'init');
    type Summary = { files_changed: number; files_unmodified: number; snapshot_id: string };
    const summary = (out: string) => JSON.parse(out.trim().split('\n').pop()!) as Summary;
    ok(await cairn(repo, ['backup', src]), 'cairn first');
    ok(await restic(repo, ['backup', '--host', 'restic', src]), 'restic first');
    // A new inode with the same content, size and mtime (as a copy back over the file makes), and a changed mode.
    ok(await runCommand('cp', ['-p', moved, `${moved}.tmp`]), 'cp -p');
    await fs.rename(`${moved}.tmp`, moved);
    await fs.chmod(chmodded, 0o600);
    for (const [flags, changed] of [[[], 2], [['--ignore-ctime'], 1], [['--ignore-inode'], 0]] as const) {
      const ours = summary(ok(await cairn(repo, ['--json', 'backup', '--dry-run', ...flags, src]), `cairn ${flags.join(' ')}`).out);
      const theirs = summary(ok(await restic(repo, ['--json', 'backup', '--dry-run', '--host', 'restic', ...flags, src]), `restic ${flags.join(' ')}`).out);
      expect({ files_changed: ours.files_changed, files_unmodified: ours.files_unmodified }, flags.join(' ')).toEqual({ files_changed: changed, files_unmodified: 3 - changed });
      expect({ files_changed: theirs.files_changed, files_unmodified: theirs.files_unmodified }, `restic ${flags.join(' ')}`).toEqual({ files_changed: changed, files_unmodified: 3 - changed });
    }
    const both = summary(ok(await cairn(repo, ['--json', 'backup', '--ignore-inode', '--time', '2012-11-01 22:08:41', src]), 'ignore inode').out);
    // The nodes carry what the files are now.
    const nodes = ok(await cairn(repo, ['ls', '--json', both.snapshot_id, src]), 'ls').out.trim().split('\n').map((l) => JSON.parse(l) as { path?: string; mode?: number });
    expect(nodes.find((n) => n.path === chmodded)!.mode).toBe(0o600);
    const snap = JSON.parse(ok(await cairn(repo, ['cat', 'snapshot', both.snapshot_id]), 'cat').out) as { time: string; tree: string };
    type Tree = { nodes: { name: string; inode?: number; subtree?: string }[] };
    let tree = JSON.parse(ok(await cairn(repo, ['cat', 'tree', snap.tree]), 'cat tree').out) as Tree;
    for (const part of src.split('/').filter(Boolean)) tree = JSON.parse(ok(await cairn(repo, ['cat', 'tree', tree.nodes.find((n) => n.name === part)!.subtree!]), 'cat tree').out) as Tree;
    expect(tree.nodes.find((n) => n.name === 'moved')!.inode).toBe((await fs.stat(moved)).ino);
    expect(new Date(snap.time).getTime()).toBe(new Date(2012, 10, 1, 22, 8, 41).getTime());
    const bad = await cairn(repo, ['backup', '--time', 'yesterday', src]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid --time "yesterday"');
  });

  it.runIf(HAVE_RESTIC)('--files-from expands globs, --files-from-verbatim takes lines as written, --files-from-raw splits at NUL: the paths restic takes', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (const f of ['logs/a.log', 'logs/b.log', 'logs/c.txt', 'docs/one.md', 'docs/two.md', ' lead space', 'new\nline', 'x[1]']) {
      await fs.mkdir(path.dirname(path.join(src, f)), { recursive: true });
      await fs.writeFile(path.join(src, f), f);
    }
    const lists = await tempDir();
    await fs.writeFile(path.join(lists, 'globs'), `# a comment\n\n  ${src}/logs/*.log  \n${src}/d?cs/*.md\n${src}/missing/*\n${src}/x\\[1]\n`);
    await fs.writeFile(path.join(lists, 'verbatim'), `${src}/ lead space\n\n${src}/logs/c.txt\n`);
    await fs.writeFile(path.join(lists, 'raw'), `${src}/new\nline\0${src}/docs/one.md\0`);
    const flags = ['--files-from', path.join(lists, 'globs'), '--files-from-verbatim', path.join(lists, 'verbatim'), '--files-from-raw', path.join(lists, 'raw')];
    ok(await cairn(repo, ['init']), 'init');
    const ours = ok(await cairn(repo, ['backup', ...flags]), 'cairn backup');
    expect(ours.stderr).toContain(`pattern "${src}/missing/*" does not match any files, skipping`);
    ok(await restic(repo, ['backup', '--host', 'restic', ...flags]), 'restic backup');
    const listed = async (r: 'cairn' | 'restic', host: string) => {
      const out = ok(await (r === 'cairn' ? cairn : restic)(repo, ['ls', '--json', 'latest', '--host', host]), `${r} ls`).out;
      return out.trim().split('\n').slice(1).map((l) => (JSON.parse(l) as { path: string }).path).filter((p) => p.startsWith(`${src}/`)).sort();
    };
    const mine = await listed('cairn', os.hostname());
    expect(mine).toEqual(await listed('restic', 'restic'));
    expect(mine).toEqual([` lead space`, 'docs', 'docs/one.md', 'docs/two.md', 'logs', 'logs/a.log', 'logs/b.log', 'logs/c.txt', 'new\nline', 'x[1]'].map((p) => `${src}/${p}`).sort());
    await fs.writeFile(path.join(lists, 'bad'), `${src}/[unclosed\n`);
    const bad = await cairn(repo, ['backup', '--files-from', path.join(lists, 'bad')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`invalid pattern "[unclosed" in --files-from`);
  });

  it('-vv lists each file as new, modified or unchanged (verbose_status lines with --json); -v alone does not', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'same'), 'same');
    await fs.writeFile(path.join(src, 'changing'), 'one');
    ok(await cairn(repo, ['init']), 'init');
    const first = ok(await cairn(repo, ['-vv', 'backup', src]), 'first').out;
    expect(first).toContain(`new       ${src}/same (4 B added)`);
    await fs.writeFile(path.join(src, 'changing'), 'two, longer');
    await fs.writeFile(path.join(src, 'added'), '');
    const lines = ok(await cairn(repo, ['--json', '-vv', 'backup', src]), 'second').out.trim().split('\n').map((l) => JSON.parse(l) as { message_type: string; action?: string; item?: string; data_size?: number });
    const status = lines.filter((l) => l.message_type === 'verbose_status').map((l) => [l.action, l.item, l.data_size]).sort();
    expect(status).toEqual([['modified', `${src}/changing`, 11], ['new', `${src}/added`, 0], ['unchanged', `${src}/same`, 0]].sort());
    expect(ok(await cairn(repo, ['-v', 'backup', src]), 'third').out).not.toContain('unchanged ');
  });

  it('--limit-upload and --limit-download hold saves and loads to their rates', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'random'), seededBytes(81, 2 * 1024 * 1024));
    ok(await cairn(repo, ['init']), 'init');
    // 2 MiB at 512 KiB/s, a second of it at once: at least three seconds.
    let t = Date.now();
    ok(await cairn(repo, ['--limit-upload', '512', 'backup', src]), 'limited backup');
    expect(Date.now() - t).toBeGreaterThanOrEqual(3000);
    const target = await tempDir();
    t = Date.now();
    ok(await cairn(repo, ['--limit-download', '512', 'restore', 'latest', '--target', target]), 'limited restore');
    expect(Date.now() - t).toBeGreaterThanOrEqual(3000);
    expect(await fs.readFile(path.join(target, src, 'random'))).toEqual(seededBytes(81, 2 * 1024 * 1024));
    const bad = await cairn(repo, ['--limit-upload', '1.5', 'snapshots']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid --limit-upload "1.5"');
  });

  it.runIf(HAVE_RESTIC)('records the mtime as atime, as restic does, and the access time with --with-atime', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const f = path.join(src, 'f');
    await fs.writeFile(f, 'x');
    await fs.utimes(f, new Date('2020-01-02T03:04:05Z'), new Date('2021-05-06T07:08:09Z'));
    ok(await cairn(repo, ['init']), 'init');
    const node = async (tool: 'cairn' | 'restic', host: string) => {
      const out = ok(await (tool === 'cairn' ? cairn : restic)(repo, ['ls', '--json', 'latest', '--host', host]), `${tool} ls`).out;
      return out.trim().split('\n').map((l) => JSON.parse(l) as { path?: string; atime?: string; mtime?: string }).find((n) => n.path === f)!;
    };
    for (const flags of [[], ['--with-atime']]) {
      const tag = flags.length > 0 ? 'with' : 'without';
      ok(await cairn(repo, ['backup', '--host', `cairn-${tag}`, ...flags, src]), `cairn ${tag}`);
      ok(await restic(repo, ['backup', '--host', `restic-${tag}`, ...flags, src]), `restic ${tag}`);
      const [ours, theirs] = [await node('cairn', `cairn-${tag}`), await node('cairn', `restic-${tag}`)];
      expect({ atime: ours.atime, mtime: ours.mtime }, tag).toEqual({ atime: theirs.atime, mtime: theirs.mtime });
      expect(new Date(ours.atime!).toISOString(), tag).toBe(flags.length > 0 ? '2020-01-02T03:04:05.000Z' : '2021-05-06T07:08:09.000Z');
    }
  });

  it('backs up the root folder itself ("/"), here narrowed by excludes to one folder', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.mkdir(path.join(src, 'sub'));
    await fs.writeFile(path.join(src, 'sub', 'f'), 'in root backup');
    const exFile = path.join(await tempDir(), 'only-src');
    await fs.writeFile(exFile, `/*\n!/tmp\n/tmp/*\n!${src}\n`);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', '/', '--exclude-file', exFile]), 'backup /');
    const lines = ok(await cairn(repo, ['ls', 'latest']), 'ls').out.trim().split('\n').slice(1);
    expect(lines).toEqual(['/tmp', src, `${src}/sub`, `${src}/sub/f`]);
    expect((JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as { paths: string[] }[])[0].paths).toEqual(['/']);
    const t = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', t]), 'restore');
    expect(await fs.readFile(path.join(t, src, 'sub', 'f'), 'utf8')).toBe('in root backup');
  });

  it('--skip-if-unchanged saves no snapshot when the tree is the parent\'s, and one when a file changed', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'a'), 'one');
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'first backup');
    const count = async (): Promise<number> => (JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as unknown[]).length;
    // The tree holds the metadata of the folders above the source too: a test that creates a
    // folder in the temporary folder meanwhile changes it, and then one more snapshot is right.
    // The second of two runs with nothing in between (nearly always the first) is skipped.
    let skipped: Record<string, unknown> | undefined;
    for (let attempt = 0; attempt < 10 && !skipped; attempt++) {
      const before = await count();
      const lines = ok(await cairn(repo, ['--json', 'backup', '--skip-if-unchanged', src]), 'backup --skip-if-unchanged').out.trim().split('\n');
      const summary = JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
      expect(summary.message_type).toBe('summary');
      if (summary.snapshot_id === undefined) {
        skipped = summary;
        expect(await count()).toBe(before);
      } else expect(await count()).toBe(before + 1);
    }
    expect(skipped).toMatchObject({ files_unmodified: 1, files_new: 0, files_changed: 0, data_added: 0 });
    let text = '';
    for (let attempt = 0; attempt < 10 && !text.includes('skipped'); attempt++) text = ok(await cairn(repo, ['backup', '--skip-if-unchanged', src]), 'backup').out;
    expect(text).toMatch(/\nskipped creating snapshot: nothing changed since [0-9a-f]{8}\n$/);
    const before = await count();
    await fs.writeFile(path.join(src, 'a'), 'two');
    expect(ok(await cairn(repo, ['backup', '--skip-if-unchanged', src]), 'backup after a change').out).toMatch(/\nsnapshot [0-9a-f]{8} saved\n$/);
    expect(await count()).toBe(before + 1);
  });

  it('prints JSON status lines with --json and nothing with --quiet', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (let i = 0; i < 30; i++) await fs.writeFile(path.join(src, `f${i}`), textBytes(i, 400_000));
    ok(await cairn(repo, ['init']), 'init');
    const j = ok(await cairn(repo, ['--json', 'backup', src]), 'backup --json');
    const lines = j.out.trim().split('\n').map((l) => JSON.parse(l) as { message_type: string });
    expect(lines[lines.length - 1].message_type).toBe('summary');
    expect(lines.every((l) => ['status', 'summary'].includes(l.message_type))).toBe(true);
    const statuses = lines.filter((l) => l.message_type === 'status') as unknown as { total_files?: number; files_done?: number }[];
    expect(statuses.length).toBeGreaterThan(0);
    expect(statuses[statuses.length - 1]).toMatchObject({ total_files: 30, files_done: 30 });
    const q = ok(await cairn(repo, ['--quiet', 'backup', src]), 'backup --quiet');
    expect(q.out).toBe('');
    expect(q.stderr).toBe('');
    // --no-scan: no totals counted first, so none in the status lines; restic's --read-concurrency is taken.
    const n = ok(await cairn(repo, ['--json', 'backup', '--no-scan', '--read-concurrency', '4', '--force', src]), 'backup --no-scan');
    const unscanned = n.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.message_type === 'status');
    expect(unscanned.length).toBeGreaterThan(0);
    expect(unscanned.filter((l) => 'total_files' in l || 'total_bytes' in l)).toEqual([]);
    expect(unscanned[unscanned.length - 1]).toMatchObject({ files_done: 30 });
    const bad = await cairn(repo, ['backup', '--read-concurrency', '0', src]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: option '--read-concurrency <n>' argument '0' is invalid\. a number of files, at least 1\n/);
  });
});

describe('output that nobody reads', () => {
  it('a backup whose stdout is closed finishes, saves its snapshot and releases its lock', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (let i = 0; i < 200; i++) await fs.writeFile(path.join(src, `f${i}`), textBytes(i, 50_000));
    ok(await cairn(repo, ['init']), 'init');
    const child = spawn(process.execPath, [path.resolve('dist/cli/main.js'), '--json', 'backup', src], { env: { ...process.env, ...repo.env }, stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.destroy();
    const code = await new Promise((res) => child.once('exit', res));
    expect(code).toBe(0);
    expect(JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out)).toHaveLength(1);
    expect(await fs.readdir(path.join(repo.dir, 'locks'))).toEqual([]);
  });
});

describe('crash safety', () => {
  it('after SIGKILL half way through a backup, restic check passes and the next backup succeeds', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    for (let i = 0; i < 60; i++) await fs.writeFile(path.join(src, `f${i}`), seededBytes(100 + i, 3 * 1024 * 1024));
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', path.join(src, 'f0')]), 'a first snapshot');
    const child = spawn(process.execPath, [path.resolve('dist/cli/main.js'), 'backup', src], { env: { ...process.env, ...repo.env }, stdio: 'ignore' });
    const exited = new Promise((res) => child.once('exit', res));
    const packs = async (): Promise<number> => {
      let n = 0;
      for (const d of await fs.readdir(path.join(repo.dir, 'data'))) if (/^[0-9a-f]{2}$/.test(d)) n += (await fs.readdir(path.join(repo.dir, 'data', d))).length;
      return n;
    };
    const before = await packs();
    const started = Date.now();
    while ((await packs()) < before + 3 && Date.now() - started < 20_000) await new Promise((res) => setTimeout(res, 10));
    child.kill('SIGKILL');
    await exited;
    const staged = async (): Promise<string[]> => (await fs.readdir(path.join(repo.dir, 'data'))).filter((n) => n.startsWith('.cairn-tmp-'));
    // A pack being written when the process died stays behind until the next backup sweeps it; make sure there is one.
    const host = os.hostname().replace(/[^A-Za-z0-9]/g, '_');
    await fs.writeFile(path.join(repo.dir, 'data', `.cairn-tmp-${host}-${child.pid}-0a1b2c-0-99`), seededBytes(1, 1000));
    if (HAVE_RESTIC) {
      // restic 0.14 does not skip stale locks by itself; its unlock removes ours (the process is gone).
      ok(await restic(repo, ['unlock']), 'restic unlock');
      expect(await fs.readdir(path.join(repo.dir, 'locks'))).toEqual([]);
      ok(await restic(repo, ['check']), 'restic check after the crash');
    }
    ok(await cairn(repo, ['check']), 'cairn check after the crash');
    ok(await cairn(repo, ['backup', src]), 'backup after the crash');
    expect(await staged()).toEqual([]);
    const t = await tempDir();
    ok(await cairn(repo, ['restore', 'latest', '--target', t]), 'restore');
    for (let i = 0; i < 60; i += 7) expect((await fs.readFile(path.join(t, src, `f${i}`))).equals(seededBytes(100 + i, 3 * 1024 * 1024))).toBe(true);
  });
});

describe('--one-file-system', () => {
  it.runIf(process.getuid?.() === 0)('keeps a mount point as an empty folder and does not cross into it', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'here.txt'), 'here');
    await fs.mkdir(path.join(src, 'mnt'));
    const mounted = await runMount(['-t', 'tmpfs', 'tmpfs', path.join(src, 'mnt')]);
    if (!mounted) {
      if (process.env.CI === 'true') throw new Error('mount -t tmpfs failed in CI');
      return;
    }
    try {
      await fs.writeFile(path.join(src, 'mnt', 'other-fs.txt'), 'elsewhere');
      ok(await cairn(repo, ['init']), 'init');
      ok(await cairn(repo, ['backup', '-x', src]), 'backup -x');
      const ls = ok(await cairn(repo, ['ls', 'latest']), 'ls').out;
      expect(ls).toContain(`${src}/here.txt`);
      expect(ls).toContain(`${src}/mnt`);
      expect(ls).not.toContain('other-fs.txt');
      ok(await cairn(repo, ['backup', src]), 'backup without -x');
      expect(ok(await cairn(repo, ['ls', 'latest']), 'ls').out).toContain(`${src}/mnt/other-fs.txt`);
    } finally {
      await runMount([path.join(src, 'mnt')], 'umount');
    }
  });
});

async function runMount(args: string[], cmd = 'mount'): Promise<boolean> {
  return (await runCommand(cmd, args)).code === 0;
}
