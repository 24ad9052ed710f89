import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CairnError } from '../errors.js';
import { HAVE_RESTIC, makeRepoPaths, runCommand, tempDir } from '../../test/support/tools.js';
import { CACHEDIR_TAG, buildExcluder, parseTagRule, taggedFolderKeeps } from './excludes.js';
import { spawnSync } from 'node:child_process';

const cleanup: string[] = [];
afterAll(async () => {
  for (const dir of cleanup) await fs.rm(dir, { recursive: true, force: true });
});

async function scratch(): Promise<string> {
  const dir = await fs.realpath(await tempDir('cairn-excludes-'));
  cleanup.push(dir);
  return dir;
}

// Cases from restic's internal/filter/filter_test.go (those with absolute paths, which is what backup matches).
const resticCases: [string, string, boolean][] = [
  ['*.go', '/foo/bar/test.go', true],
  ['*.c', '/foo/bar/test.go', false],
  ['*', '/foo/bar/test.go', true],
  ['**', '/foo/bar/test.go', true],
  ['foo*', '/foo/bar/test.go', true],
  ['bar*', '/foo/bar/test.go', true],
  ['/bar*', '/foo/bar/test.go', false],
  ['bar/*', '/foo/bar/test.go', true],
  ['baz/*', '/foo/bar/test.go', false],
  ['bar/test.go', '/foo/bar/test.go', true],
  ['bar/*.go', '/foo/bar/test.go', true],
  ['ba*/*.go', '/foo/bar/test.go', true],
  ['bb*/*.go', '/foo/bar/test.go', false],
  ['test.*', '/foo/bar/test.go', true],
  ['tesT.*', '/foo/bar/test.go', false],
  ['bar/*', '/foo/bar/baz', true],
  ['bar', '/foo/bar', true],
  ['/foo/bar', '/foo/bar', true],
  ['/foo/bar/', '/foo/bar', true],
  ['/foo/bar', '/foo/baz', false],
  ['/foo/bar', '/foo/baz/', false],
  ['/foo///bar', '/foo/bar', true],
  ['/foo/../bar', '/foo/bar', false],
  ['/foo/../bar', '/bar', true],
  ['/foo', '/foo/baz', true],
  ['/foo/', '/foo/baz', true],
  ['/foo/*', '/foo', false],
  ['/foo/*', '/foo/baz', true],
  ['bar', '/foo/bar/baz', true],
  ['bar', '/foo/bar/test.go', true],
  ['/foo/*test.*', '/foo/bar/test.go', false],
  ['/foo/*/test.*', '/foo/bar/test.go', true],
  ['/foo/*/bar/test.*', '/foo/bar/test.go', false],
  ['/*/*/bar/test.*', '/foo/bar/test.go', false],
  ['/*/*/bar/test.*', '/foo/bar/baz/test.go', false],
  ['/*/*/baz/test.*', '/foo/bar/baz/test.go', true],
  ['/*/foo/bar/test.*', '/foo/bar/baz/test.go', false],
  ['sdk', '/foo/bar/sdk', true],
  ['sdk', '/foo/bar/sdk/test/sdk_foo.go', true],
  ['sdk/*/cpp/*/*vars*.html', '/usr/share/doc/libreoffice/sdk/docs/cpp/ref/a00517.html', false],
  ['foo/**/bar/*.go', '/home/user/foo/work/special/project/bar/test.go', true],
  ['foo/**/bar/*.go', '/home/user/foo/bar/test.go', true],
  ['foo/**/bar/*.go', '/home/user/foo/test.c', false],
  ['foo/**/bar/*.go', '/foo/bar/main.go', true],
  ['foo/**/bar', '/home/user/foo/x/y/bar', true],
  ['foo/**/bar', '/home/user/foo/x/y/bar/main.go', true],
  ['foo/**/bar/**/x', '/home/user/foo/bar/x', true],
  ['foo/**/bar/**/x', '/home/user/foo/blaaa/blaz/bar/shared/work/x', true],
  ['user/**/important*', '/home/user/work/x/y/hidden/x', false],
  ['user/**/hidden*/**/c', '/home/user/work/x/y/hidden/z/a/b/c', true],
  ['/home/[uU]ser/?.go', '/home/user/F.go', true],
];

// Further cases; the surprising ones were checked against restic 0.14.
const moreCases: [string, string, boolean][] = [
  ['foo/bar', '/x/foo/bar', true],
  ['foo/bar', '/x/foo/bar/baz/qux', true],
  ['foo/bar', '/x/foo/baz/bar', false],
  ['cache/', '/a/b/cache/data', true],
  ['*.log', '/a/b/c/d/x.log', true],
  ['*.log', '/a/x.log.1', false],
  // `*` and `?` match a leading dot, unlike a shell.
  ['*', '/.hidden', true],
  ['.*', '/a/.git/config', true],
  ['?.txt', '/a/é.txt', true],
  ['?.txt', '/a/😀.txt', true],
  ['?.txt', '/a/ab.txt', false],
  ['a?c', '/abc', true],
  ['a?c', '/ac', false],
  // `**` may stand for no component at all, so `dir/**` also excludes dir itself.
  ['foo/**', '/x/foo', true],
  ['a/**/b', '/r/a/b', true],
  ['a/**/b', '/r/a/x/y/z/b/file', true],
  ['a/**/b', '/r/a/xb', false],
  ['/**', '/anything/at/all', true],
  ['/', '/anything', true],
  ['a**b', '/axxb', true],
  ['a**b', '/ax/xb', false],
  // A relative pattern starts at a real component, never at the root itself.
  ['*/b', '/b', false],
  ['*/b', '/a/b', true],
  ['[a-c]x', '/bx', true],
  ['[a-c]x', '/dx', false],
  ['[^a]', '/b', true],
  ['[^a]', '/a', false],
  // Go's filepath.Match negates a class with `^` only: `[!a]` is the class of '!' and 'a'.
  ['[!a]', '/a', true],
  ['[!a]', '/!', true],
  ['[!a]', '/b', false],
  ['[\\]]', '/]', true],
  ['[c-a]', '/b', false],
  ['[+-0]', '/x/+', true],
  ['[+-0]', '/x/0', true],
  ['\\*', '/*', true],
  ['\\*', '/a', false],
  ['\\[x]', '/[x]', true],
  ['a]', '/a]', true],
  ['.', '/a', false],
  ['./foo', '/a/foo', true],
  ['/tmp/data', '/tmp/data2', false],
  ['/tmp/data', '/tmp/data/x', true],
  ['/tmp/data', '/x/tmp/data', false],
];

describe('one pattern', () => {
  it.each([...resticCases, ...moreCases])('%s vs %s → %s', async (pattern, p, expected) => {
    const ex = await buildExcluder({ exclude: [pattern] });
    expect(ex.excluded(p)).toBe(expected);
  });

  it('cleans the path it is given', async () => {
    const ex = await buildExcluder({ exclude: ['/foo/bar'] });
    expect(ex.excluded('/foo//bar/')).toBe(true);
    expect(ex.excluded('/foo/x/../bar')).toBe(true);
    expect(ex.excluded('/foo/./baz')).toBe(false);
  });
});

describe('pattern lists', () => {
  const listCases: [string[], string, boolean][] = [
    [['*.log', '!keep.log'], '/a/keep.log', false],
    [['*.log', '!keep.log'], '/a/other.log', true],
    // The last matching pattern wins.
    [['!keep.log', '*.log'], '/a/keep.log', true],
    [['*.log', '!keep.log', 'a/*.log'], '/a/keep.log', true],
    [['*.log', '!keep.log', 'a/*.log'], '/b/keep.log', false],
    [['dir', '!dir'], '/x/dir', false],
    [['dir', '!dir'], '/x/dir/file', false],
    // Per path: the walker never reaches /x/dir/sub, because /x/dir itself stays excluded.
    [['dir', '!dir/sub'], '/x/dir', true],
    [['dir', '!dir/sub'], '/x/dir/sub', false],
    [['*.go', '*.c'], '/src/main.c', true],
    [['', '*.c'], '/src/main.go', false],
    [['\\!important'], '/x/!important', true],
  ];

  it.each(listCases)('%j vs %s → %s', async (exclude, p, expected) => {
    const ex = await buildExcluder({ exclude });
    expect(ex.excluded(p)).toBe(expected);
  });

  it('keeps everything without patterns', async () => {
    const ex = await buildExcluder({});
    expect(ex.excluded('/a/b')).toBe(false);
    expect(ex.patterns).toEqual([]);
  });
});

describe('case-insensitive patterns', () => {
  it.each([
    ['*.LOG', '/x/a.log', true],
    ['*.log', '/X/A.LOG', true],
    ['/Home/User', '/home/user/docs/file', true],
    ['[A-C]x', '/bX', true],
    ['[A-C]x', '/dX', false],
    ['Cache', '/var/CACHE/x', true],
  ])('--iexclude %s vs %s → %s', async (pattern, p, expected) => {
    const ex = await buildExcluder({ iexclude: [pattern] });
    expect(ex.excluded(p)).toBe(expected);
  });

  it('--exclude stays case-sensitive', async () => {
    const ex = await buildExcluder({ exclude: ['*.LOG'] });
    expect(ex.excluded('/x/a.log')).toBe(false);
    expect(ex.excluded('/x/a.LOG')).toBe(true);
  });

  it('a negation only re-includes within its own list', async () => {
    const ex = await buildExcluder({ iexclude: ['*.LOG', '!keep.log'], exclude: ['!a.log'] });
    expect(ex.excluded('/x/A.log')).toBe(true);
    expect(ex.excluded('/x/KEEP.LOG')).toBe(false);
  });
});

describe('invalid patterns', () => {
  it.each(['test/[', 'test/**/[', 'foo\\', '[]a]', '[]', '[^]', '[a-]', '[-a]', '[a', '[a-b', '[\\'])('%s is BAD_INPUT', async (pattern) => {
    const err = await buildExcluder({ exclude: ['ok', pattern] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).code).toBe('BAD_INPUT');
    expect((err as CairnError).message).toContain(JSON.stringify(pattern));
  });

  it('names every invalid pattern, also from --iexclude', async () => {
    const err = (await buildExcluder({ iexclude: ['A[', 'fine', 'B\\'] }).catch((e: unknown) => e)) as CairnError;
    expect(err.code).toBe('BAD_INPUT');
    expect(err.message).toContain('"A["');
    expect(err.message).toContain('"B\\\\"');
  });
});

describe('exclude files', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const k of ['CAIRN_T_DIR', 'CAIRN_T_EXT', 'CAIRN_T_UNSET']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  });

  it('reads one pattern per line, skipping blanks and comments, expanding the environment', async () => {
    const dir = await scratch();
    process.env.CAIRN_T_DIR = '/data/projects';
    process.env.CAIRN_T_EXT = 'tmp';
    delete process.env.CAIRN_T_UNSET;
    const file = path.join(dir, 'excludes.txt');
    await fs.writeFile(
      file,
      [
        '# build output',
        '',
        '   node_modules   ',
        '\t# indented comment',
        '$CAIRN_T_DIR/cache',
        '*.${CAIRN_T_EXT}',
        'price$$list',
        'x$CAIRN_T_UNSET.y',
        'trailing$',
        'a$/b',
        '!*.keep.tmp\r',
        '',
      ].join('\n'),
    );
    const ex = await buildExcluder({ exclude: ['*.o'], excludeFiles: [file] });
    expect(ex.patterns).toEqual(['*.o', 'node_modules', '/data/projects/cache', '*.tmp', 'price$list', 'x.y', 'trailing$', 'a$/b', '!*.keep.tmp']);
    expect(ex.excluded('/src/app/node_modules/x/index.js')).toBe(true);
    expect(ex.excluded('/data/projects/cache/blob')).toBe(true);
    expect(ex.excluded('/data/projects/src')).toBe(false);
    expect(ex.excluded('/a/b.tmp')).toBe(true);
    expect(ex.excluded('/a/b.keep.tmp')).toBe(false);
    expect(ex.excluded('/r/price$list')).toBe(true);
    expect(ex.excluded('/r/x.y')).toBe(true);
    expect(ex.excluded('/r/a$/b')).toBe(true);
    expect(ex.excluded('/r/# build output')).toBe(false);
  });

  it('puts file patterns after command-line ones, so a file can override a command-line negation', async () => {
    const dir = await scratch();
    const file = path.join(dir, 'ex');
    await fs.writeFile(file, '*.log\n');
    const ex = await buildExcluder({ exclude: ['!keep.log'], excludeFiles: [file] });
    expect(ex.excluded('/x/keep.log')).toBe(true);
  });

  it('--iexclude-file ignores case, and a byte order mark is dropped', async () => {
    const dir = await scratch();
    const utf8 = path.join(dir, 'bom8');
    const utf16 = path.join(dir, 'bom16');
    await fs.writeFile(utf8, '\ufeffSecret.TXT\n');
    await fs.writeFile(utf16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('*.BAK\r\n', 'utf16le')]));
    const ex = await buildExcluder({ iexcludeFiles: [utf8, utf16] });
    expect(ex.patterns).toEqual(['Secret.TXT', '*.BAK']);
    expect(ex.excluded('/home/SECRET.txt')).toBe(true);
    expect(ex.excluded('/home/old.bak')).toBe(true);
    expect(ex.excluded('/home/other.txt')).toBe(false);
  });

  it('an unreadable file or an invalid line is BAD_INPUT', async () => {
    const dir = await scratch();
    const missing = path.join(dir, 'nope');
    await expect(buildExcluder({ excludeFiles: [missing] })).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining(missing) });
    const bad = path.join(dir, 'bad');
    await fs.writeFile(bad, 'good\nbad[\n');
    await expect(buildExcluder({ excludeFiles: [bad] })).rejects.toMatchObject({ code: 'BAD_INPUT', message: expect.stringContaining('"bad["') });
  });

  it('lists patterns in evaluation order', async () => {
    const dir = await scratch();
    const f1 = path.join(dir, 'f1');
    const f2 = path.join(dir, 'f2');
    await fs.writeFile(f1, 'from-file\n');
    await fs.writeFile(f2, 'From-IFile\n');
    const ex = await buildExcluder({ exclude: ['a', ''], iexclude: ['B'], excludeFiles: [f1], iexcludeFiles: [f2] });
    expect(ex.patterns).toEqual(['a', 'from-file', 'B', 'From-IFile']);
  });
});

describe.runIf(HAVE_RESTIC)('agrees with restic backup', () => {
  const TREE = [
    '.dotfile',
    '.hidden/config',
    'a.log',
    'keep.log',
    'notes.txt',
    'NOTES.BAK',
    'cache/blob1',
    'cache/blob2',
    'docs/public.txt',
    'docs/cache',
    'docs/private/secret.txt',
    'docs/private/more/deeper.txt',
    'a/b/f1',
    'a/x/b/f2',
    'a/x/y/b/f3',
    'a/x/c/f4',
    'a/xb/f5',
    'deep/1/2/3/app.log',
    'deep/1/2/3/data.bin',
    'deep/1/cache/tmp',
    'deep/1/keep.log',
    'img/2021.tmp',
    'img/photo.jpg',
    'img/x.TMP',
    'img/Photo.JPG',
    'weird[1].txt',
    'space name.txt',
    'dollar$sign',
  ];

  it('keeps exactly the paths restic keeps', async () => {
    const root = await scratch();
    const src = path.join(root, 'src');
    for (const rel of TREE) {
      await fs.mkdir(path.dirname(path.join(src, rel)), { recursive: true });
      await fs.writeFile(path.join(src, rel), rel);
    }
    const excludeFile = path.join(root, 'exclude-file');
    await fs.writeFile(excludeFile, '# pictures\n\n$CAIRN_T_PICS\nweird\\[1\\].txt\ndollar$$sign\n');
    const iexcludeFile = path.join(root, 'iexclude-file');
    await fs.writeFile(iexcludeFile, '*.tmp\n');
    const exclude = ['*.log', '!keep.log', 'cache/', 'a/**/b', `${src}/docs/private`, '[0-9]*.tmp', '.h*'];
    const iexclude = ['*.bak'];
    const flags = [
      ...exclude.flatMap((p) => ['--exclude', p]),
      ...iexclude.flatMap((p) => ['--iexclude', p]),
      '--exclude-file',
      excludeFile,
      '--iexclude-file',
      iexcludeFile,
    ];
    const repo = await makeRepoPaths();
    cleanup.push(path.dirname(repo.dir));
    const env = { ...repo.env, CAIRN_T_PICS: '*.jpg' };
    const run = async (args: string[]): Promise<string> => {
      const r = await runCommand('restic', args, { env, cwd: root });
      if (r.code !== 0) throw new Error(`restic ${args[0]} failed: ${r.stderr}`);
      return r.out;
    };
    await run(['init']);
    await run(['backup', ...flags, 'src']);
    const resticKept = new Set(
      (await run(['ls', '--json', 'latest']))
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { struct_type?: string; path?: string })
        .filter((n) => n.struct_type === 'node')
        .map((n) => n.path!),
    );

    const saved = process.env.CAIRN_T_PICS;
    process.env.CAIRN_T_PICS = '*.jpg';
    const ex = await buildExcluder({ exclude, iexclude, excludeFiles: [excludeFile], iexcludeFiles: [iexcludeFile] }).finally(() => {
      if (saved === undefined) delete process.env.CAIRN_T_PICS;
      else process.env.CAIRN_T_PICS = saved;
    });
    // Walk as the archiver does: an excluded directory is not entered.
    const ours = new Set<string>();
    const walk = async (abs: string): Promise<void> => {
      if (ex.excluded(abs)) return;
      ours.add(`/${path.relative(root, abs)}`);
      const st = await fs.lstat(abs);
      if (st.isDirectory()) for (const name of await fs.readdir(abs)) await walk(path.join(abs, name));
    };
    await walk(src);

    expect([...ours].sort()).toEqual([...resticKept].sort());
    // The exclusions did bite: dotfiles, logs, caches (`cache/` also takes a file named cache), a/**/b, the
    // absolute path, both case-insensitive lists, the exclude file.
    for (const gone of ['/src/.hidden', '/src/a.log', '/src/cache', '/src/docs/cache', '/src/a/b', '/src/a/x/y/b', '/src/docs/private', '/src/img/x.TMP', '/src/NOTES.BAK', '/src/img/photo.jpg', '/src/weird[1].txt', '/src/dollar$sign']) {
      expect(ours.has(gone)).toBe(false);
    }
    for (const kept of ['/src/keep.log', '/src/deep/1/keep.log', '/src/.dotfile', '/src/a/xb/f5', '/src/img/Photo.JPG']) {
      expect(ours.has(kept)).toBe(true);
    }

    // restic records only the --exclude values in the snapshot; they lead our list.
    const [snap] = JSON.parse(await run(['snapshots', '--json', 'latest'])) as { excludes?: string[] }[];
    expect(snap.excludes).toEqual(exclude);
    expect(ex.patterns.slice(0, exclude.length)).toEqual(exclude);
  });
});

describe('tag rules', () => {
  it('reads name[:header] as restic does, the first colon splitting', () => {
    expect(parseTagRule('.nobackup')).toEqual({ name: '.nobackup', header: '' });
    expect(parseTagRule('TAG:a:b')).toEqual({ name: 'TAG', header: 'a:b' });
    for (const bad of ['', ':x', 'a/b', '..']) expect(() => parseTagRule(bad), bad).toThrow(CairnError);
  });

  it('counts a tag file only when it starts with the header: not a short one, a folder or a fifo (which is not waited on)', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, 'CACHEDIR.TAG'), CACHEDIR_TAG.header.slice(0, 10));
    expect(taggedFolderKeeps(dir, ['CACHEDIR.TAG', 'x'], [CACHEDIR_TAG])).toBeNull();
    await fs.writeFile(path.join(dir, 'CACHEDIR.TAG'), `${CACHEDIR_TAG.header}\n# more`);
    expect(taggedFolderKeeps(dir, ['CACHEDIR.TAG', 'x'], [CACHEDIR_TAG])).toEqual(new Set(['CACHEDIR.TAG']));
    // Listed names decide: a tag file the listing does not name is not looked for.
    expect(taggedFolderKeeps(dir, ['x'], [CACHEDIR_TAG])).toBeNull();
    await fs.mkdir(path.join(dir, 'folder-tag'));
    expect(taggedFolderKeeps(dir, ['folder-tag'], [{ name: 'folder-tag', header: 'h' }])).toBeNull();
    expect(taggedFolderKeeps(dir, ['folder-tag'], [{ name: 'folder-tag', header: '' }])).toEqual(new Set(['folder-tag']));
    expect(spawnSync('mkfifo', [path.join(dir, 'fifo')]).status).toBe(0);
    expect(taggedFolderKeeps(dir, ['fifo'], [{ name: 'fifo', header: 'h' }])).toBeNull();
    // Two rules with different tag files: each leaves out the other's, so nothing stays.
    expect(taggedFolderKeeps(dir, ['CACHEDIR.TAG', 'folder-tag'], [CACHEDIR_TAG, { name: 'folder-tag', header: '' }])).toEqual(new Set());
  });
});
