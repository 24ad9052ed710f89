import fsSync from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CairnError } from '../errors.js';
import { joinPath, type FsPath } from '../fs/fspath.js';

/** The exclude flags of `backup`, as restic spells them. */
export interface ExcludeOptions {
  exclude?: string[];
  iexclude?: string[];
  excludeFiles?: string[];
  iexcludeFiles?: string[];
  /** --exclude-if-present: `name` or `name:header` (see TagRule). */
  ifPresent?: string[];
  /** --exclude-caches: the rule for CACHEDIR.TAG (CACHEDIR_TAG). */
  caches?: boolean;
  /** --exclude-larger-than, in bytes: files (anything but folders) larger than this are left out. */
  largerThan?: number;
}

/**
 * restic's --exclude-if-present rule: a folder holding a file named `name` (that starts with
 * `header`, unless it is empty) has its contents left out, all but that file itself, which stays
 * so that the folder is still recognisable in the snapshot.
 */
export interface TagRule {
  name: string;
  header: string;
}

/** The Cache Directory Tagging Specification's tag file (https://bford.info/cachedir/), as --exclude-caches looks for it. */
export const CACHEDIR_TAG: TagRule = { name: 'CACHEDIR.TAG', header: 'Signature: 8a477f597d28d172789f06886806bc55' };

/** Reads `name[:header]` as restic does (the first colon splits). */
export function parseTagRule(spec: string): TagRule {
  const at = spec.indexOf(':');
  const name = at < 0 ? spec : spec.slice(0, at);
  if (name === '' || name.includes('/') || name === '.' || name === '..') {
    throw new CairnError('BAD_INPUT', `invalid --exclude-if-present ${JSON.stringify(spec)}: give a file name, optionally followed by :header`);
  }
  return { name, header: at < 0 ? '' : spec.slice(at + 1) };
}

/**
 * The names of a folder's entries that stay when a tag rule leaves out its contents, or null when
 * none does. As in restic, each matching rule keeps only its own tag file, so a folder two rules
 * with different names match keeps nothing. A tag file that cannot be read or is shorter than the
 * header, or whose first bytes differ from it, does not count.
 */
export function taggedFolderKeeps(dir: FsPath, names: readonly string[], rules: readonly TagRule[]): Set<string> | null {
  const matched = rules.filter((rule) => names.includes(rule.name) && hasHeader(joinPath(dir, rule.name), rule.header));
  if (matched.length === 0) return null;
  const name = matched[0].name;
  return matched.every((r) => r.name === name) ? new Set([name]) : new Set();
}

/** Whether a source path given to back up lies in a folder a tag rule leaves out (restic leaves such a source out too). */
export function sourceInTaggedFolder(absPath: string, rules: readonly TagRule[]): boolean {
  if (rules.length === 0 || absPath === '/') return false;
  const dir = path.dirname(absPath);
  const present = rules.map((r) => r.name).filter((n) => fsSync.existsSync(path.join(dir, n)));
  const keeps = present.length > 0 ? taggedFolderKeeps(dir, present, rules) : null;
  return keeps !== null && !keeps.has(path.basename(absPath));
}

function hasHeader(file: FsPath, header: string): boolean {
  if (header === '') return true;
  const want = Buffer.from(header, 'utf8');
  let fd: number;
  try {
    fd = fsSync.openSync(file, fsSync.constants.O_RDONLY | fsSync.constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const got = Buffer.alloc(want.length);
    let n = 0;
    while (n < got.length) {
      const r = fsSync.readSync(fd, got, n, got.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return n === want.length && got.equals(want);
  } catch {
    return false;
  } finally {
    fsSync.closeSync(fd);
  }
}

/** A compiled set of exclude patterns. */
export interface Excluder {
  /**
   * Whether restic would reject this path by name. The decision is per path, as in restic: the walker
   * must not descend into an excluded directory, so a negated pattern cannot bring back anything below one.
   */
  excluded(absPath: string): boolean;
  /**
   * Every effective pattern in evaluation order: --exclude, exclude files, --iexclude, iexclude files. restic
   * itself records only the raw --exclude values in a snapshot's `excludes`; this is those followed by the rest.
   */
  patterns: string[];
  /**
   * The case-sensitive and case-insensitive lists after reading the files, the tag rules and the
   * size limit: plain data (for the folder-reading thread), and `buildExcluder` of these is the
   * same excluder.
   */
  lists: ExcludeLists;
  /** The tag rules (--exclude-if-present, --exclude-caches). */
  tags: TagRule[];
  /** --exclude-larger-than, bytes. */
  largerThan?: number;
  /** Whether any rule is set at all. */
  any: boolean;
}

/** An excluder's rules as plain data. */
export interface ExcludeLists {
  exclude: string[];
  iexclude: string[];
  tags?: TagRule[];
  largerThan?: number;
}

/**
 * Compiles restic's exclude patterns once into regular expressions over the whole absolute path.
 *
 * Rules, as restic applies them: a pattern is cleaned (`foo/` is `foo`); one starting with `/` is anchored at
 * the root, any other may start at any path component; it matches a path when it matches the path or one of
 * its parents. Components use Go's filepath.Match syntax (`*`, `?`, `[a-z]`, `[^a]`, `\` escapes; note that
 * `[!a]` is a class of `!` and `a`, not a negation), and a `**` component stands for any number of components.
 * A pattern starting with `!` re-includes, the last matching pattern wins; case-sensitive and case-insensitive
 * patterns are two separate lists, either one excluding a path excludes it. Exclude files hold one pattern per
 * line, trimmed, skipping blank lines and `#` comments, with `$VAR`/`${VAR}` expanded (`$$` is a dollar sign).
 * Invalid patterns are a BAD_INPUT error naming them.
 */
export async function buildExcluder(opts: ExcludeOptions & { tags?: TagRule[] }): Promise<Excluder> {
  // Like restic, patterns from files come after those from the command line, which matters for negations.
  const exclude = [...(opts.exclude ?? []), ...(await readPatternFiles(opts.excludeFiles ?? []))];
  const iexclude = [...(opts.iexclude ?? []), ...(await readPatternFiles(opts.iexcludeFiles ?? []))];
  const sensitive = compileList(exclude, false);
  const insensitive = compileList(iexclude, true);
  const tags = [...(opts.tags ?? []), ...(opts.caches ? [CACHEDIR_TAG] : []), ...(opts.ifPresent ?? []).map(parseTagRule)];
  const largerThan = opts.largerThan;
  if (largerThan !== undefined && !(Number.isSafeInteger(largerThan) && largerThan >= 0)) throw new CairnError('BAD_INPUT', `invalid --exclude-larger-than ${largerThan}`);
  const patterns = [...exclude, ...iexclude].filter((p) => p !== '');
  return {
    patterns,
    lists: { exclude, iexclude, tags, largerThan },
    tags,
    largerThan,
    any: patterns.length > 0 || tags.length > 0 || largerThan !== undefined,
    excluded(absPath: string): boolean {
      const p = cleanPath(absPath);
      return (sensitive !== undefined && sensitive(p)) || (insensitive !== undefined && insensitive(p.toLowerCase()));
    },
  };
}

const UNCLEAN = /\/\/|\/\.\.?(?:\/|$)|.\/$/;

/** The archiver already hands over clean absolute paths; only anything else pays for path.resolve. */
function cleanPath(p: string): string {
  return p.charCodeAt(0) === 0x2f && !UNCLEAN.test(p) ? p : path.posix.resolve(p);
}

type Matcher = (p: string) => boolean;

function compileList(patterns: string[], ignoreCase: boolean): Matcher | undefined {
  const rules: { source: string; negated: boolean }[] = [];
  const invalid: string[] = [];
  for (const pattern of patterns) {
    // restic skips empty patterns, which would otherwise match everything.
    if (pattern === '') continue;
    try {
      rules.push(compilePattern(ignoreCase ? pattern.toLowerCase() : pattern));
    } catch (err) {
      if (!(err instanceof PatternSyntaxError)) throw err;
      invalid.push(`${JSON.stringify(pattern)} (${err.message})`);
    }
  }
  if (invalid.length > 0) {
    throw new CairnError('BAD_INPUT', `invalid ${ignoreCase ? 'iexclude' : 'exclude'} pattern${invalid.length > 1 ? 's' : ''}: ${invalid.join(', ')}`);
  }
  if (rules.length === 0) return undefined;
  if (!rules.some((r) => r.negated)) {
    // Without negations the order is irrelevant, so one alternation scans the path once.
    const re = new RegExp(rules.map((r) => `(?:${r.source})`).join('|'), 'u');
    return (p) => re.test(p);
  }
  const compiled = rules.map((r) => ({ re: new RegExp(r.source, 'u'), negated: r.negated }));
  return (p) => {
    for (let i = compiled.length - 1; i >= 0; i--) {
      if (compiled[i].re.test(p)) return !compiled[i].negated;
    }
    return false;
  };
}

class PatternSyntaxError extends Error {}

/** Any run of components, including none. */
const ANY_COMPONENTS = '(?:/[^/]*)*';

function compilePattern(pattern: string): { source: string; negated: boolean } {
  const negated = pattern.startsWith('!');
  const cleaned = goClean(negated ? pattern.slice(1) : pattern);
  const absolute = cleaned.startsWith('/');
  let source = absolute ? '^' : '';
  for (const part of (absolute ? cleaned.slice(1) : cleaned).split('/')) {
    // An empty part only comes from the pattern `/`, which restic treats like `/**`.
    source += part === '**' || part === '' ? ANY_COMPONENTS : `/${componentSource(part)}`;
  }
  // Matching may stop at any component boundary: that is how a directory's pattern covers its contents.
  return { source: `${source}(?=/|$)`, negated };
}

/** Go's filepath.Clean for slash-separated paths. */
function goClean(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

const REGEX_SYNTAX = /[\\^$.*+?()[\]{}|/]/g;

function literal(ch: string): string {
  return ch.replace(REGEX_SYNTAX, '\\$&');
}

/**
 * Go's filepath.Match for one path component (no `/` in the name): a matcher, or `BAD_INPUT` for a
 * pattern Go refuses (`ErrBadPattern`), naming the pattern and `what` it came from.
 */
export function componentMatcher(pattern: string, what: string): (name: string) => boolean {
  let re: RegExp;
  try {
    re = new RegExp(`^${componentSource(pattern)}$`, 'u');
  } catch (err) {
    if (!(err instanceof PatternSyntaxError)) throw err;
    throw new CairnError('BAD_INPUT', `invalid pattern ${JSON.stringify(pattern)} in ${what}: ${err.message}`);
  }
  return (name) => re.test(name);
}

/** Translates one component of Go's filepath.Match syntax; Go compares runes, hence code points here. */
function componentSource(part: string): string {
  const cs = Array.from(part);
  let out = '';
  let i = 0;
  while (i < cs.length) {
    const c = cs[i++];
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '\\') {
      if (i >= cs.length) throw new PatternSyntaxError('trailing backslash');
      out += literal(cs[i++]);
    } else if (c === '[') {
      const cls = parseClass(cs, i);
      i = cls.end;
      out += cls.source;
    } else out += literal(c);
  }
  return out;
}

function parseClass(cs: string[], start: number): { source: string; end: number } {
  let i = start;
  const negated = cs[i] === '^';
  if (negated) i++;
  const readChar = (): number => {
    if (i >= cs.length || cs[i] === '-' || cs[i] === ']') throw new PatternSyntaxError('bad character class');
    if (cs[i] === '\\') i++;
    if (i >= cs.length) throw new PatternSyntaxError('bad character class');
    const r = cs[i++].codePointAt(0)!;
    if (i >= cs.length) throw new PatternSyntaxError('unclosed character class');
    return r;
  };
  const ranges: [number, number][] = [];
  for (;;) {
    if (cs[i] === ']' && ranges.length > 0) {
      i++;
      break;
    }
    const lo = readChar();
    let hi = lo;
    if (cs[i] === '-') {
      i++;
      hi = readChar();
    }
    ranges.push([lo, hi]);
  }
  let items = '';
  for (const [lo, hi] of ranges) {
    // A reversed range is valid in Go and matches nothing; '/' is cut out because it separates components here.
    if (lo <= 0x2e && hi >= lo) items += classRange(lo, Math.min(hi, 0x2e));
    if (hi >= 0x30 && hi >= lo) items += classRange(Math.max(lo, 0x30), hi);
  }
  return { source: negated ? `[^/${items}]` : `[${items}]`, end: i };
}

function classRange(lo: number, hi: number): string {
  const esc = (r: number): string => `\\u{${r.toString(16)}}`;
  return lo === hi ? esc(lo) : `${esc(lo)}-${esc(hi)}`;
}

async function readPatternFiles(files: string[]): Promise<string[]> {
  const patterns: string[] = [];
  for (const file of files) {
    let data: Buffer;
    try {
      data = await fs.readFile(file);
    } catch (err) {
      throw new CairnError('BAD_INPUT', `cannot read exclude patterns from ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    for (const raw of decodeText(data).split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      patterns.push(expandEnv(line));
    }
  }
  return patterns;
}

/** Like restic's textfile.Read: UTF-8, or UTF-16 when the file starts with its byte order mark. */
function decodeText(data: Buffer): string {
  let encoding = 'utf-8';
  if (data[0] === 0xff && data[1] === 0xfe) encoding = 'utf-16le';
  else if (data[0] === 0xfe && data[1] === 0xff) encoding = 'utf-16be';
  // TextDecoder drops the byte order mark, as restic does.
  return new TextDecoder(encoding).decode(data);
}

const SHELL_SPECIAL = '*#$@!?-0123456789';
const NAME_CHAR = /[A-Za-z0-9_]/;

/** Go's os.Expand over the environment, which is what restic applies to each line; `$$` stays a dollar sign. */
function expandEnv(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== '$' || i + 1 === s.length) {
      out += s[i];
      continue;
    }
    const { name, width } = shellName(s, i + 1);
    // A name-less `${` or `${}` is eaten, a `$` followed by no name at all stays.
    if (name === '' && width === 0) out += '$';
    else if (name === '$') out += '$';
    else if (name !== '') out += process.env[name] ?? '';
    i += width;
  }
  return out;
}

function shellName(s: string, at: number): { name: string; width: number } {
  if (s[at] === '{') {
    if (s.length > at + 2 && SHELL_SPECIAL.includes(s[at + 1]) && s[at + 2] === '}') return { name: s[at + 1], width: 3 };
    const close = s.indexOf('}', at + 1);
    if (close === -1) return { name: '', width: 1 };
    if (close === at + 1) return { name: '', width: 2 };
    return { name: s.slice(at + 1, close), width: close - at + 1 };
  }
  if (SHELL_SPECIAL.includes(s[at])) return { name: s[at], width: 1 };
  let end = at;
  while (end < s.length && NAME_CHAR.test(s[end])) end++;
  return { name: s.slice(at, end), width: end - at };
}
