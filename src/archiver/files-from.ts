/**
 * restic's `--files-from`, `--files-from-verbatim` and `--files-from-raw`: lists of paths to back
 * up, read from files (`-` is standard input).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CairnError } from '../errors.js';
import { componentMatcher } from './excludes.js';

export interface FilesFrom {
  /** One pattern per line, trimmed; blank lines and `#` comments skipped; each expanded as Go's filepath.Glob expands it. */
  patterns?: string[];
  /** One path per line, exactly as written (spaces kept); blank lines skipped. */
  verbatim?: string[];
  /** Paths separated by NUL bytes (as `find -print0` writes them); empty ones skipped. */
  raw?: string[];
}

function readList(file: string, flag: string): string {
  try {
    return fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function lines(text: string): string[] {
  return text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

/** The paths the lists name, in order; `warn` hears of each pattern that matches nothing. */
export function readFilesFrom(opts: FilesFrom, warn: (message: string) => void): string[] {
  const out: string[] = [];
  for (const file of opts.patterns ?? []) {
    for (const raw of lines(readList(file, '--files-from'))) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const found = goGlob(line, `--files-from ${file}`);
      if (found.length === 0) warn(`pattern ${JSON.stringify(line)} does not match any files, skipping`);
      out.push(...found);
    }
  }
  for (const file of opts.verbatim ?? []) for (const line of lines(readList(file, '--files-from-verbatim'))) if (line !== '') out.push(line);
  for (const file of opts.raw ?? []) for (const name of readList(file, '--files-from-raw').split('\0')) if (name !== '') out.push(name);
  return out;
}

const META = /[*?[\\]/;

/**
 * Go's filepath.Glob: the paths that match `pattern` (whose components use filepath.Match's
 * syntax), each folder's matches in name order; a pattern without wildcards stands for itself when
 * it exists. Errors reading a folder count as no match, as in Go.
 */
export function goGlob(pattern: string, what: string): string[] {
  if (!META.test(pattern)) {
    try {
      fs.lstatSync(pattern);
      return [pattern];
    } catch {
      return [];
    }
  }
  const slash = pattern.lastIndexOf('/');
  const rawDir = slash < 0 ? '' : pattern.slice(0, slash + 1);
  const file = pattern.slice(slash + 1);
  const dir = rawDir === '' ? '.' : rawDir === '/' ? '/' : rawDir.slice(0, -1);
  const match = componentMatcher(file, what);
  const dirs = META.test(dir) ? goGlob(dir, what) : [dir];
  const out: string[] = [];
  for (const d of dirs) {
    let names: string[];
    try {
      if (!fs.statSync(d).isDirectory()) continue;
      names = fs.readdirSync(d).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    } catch {
      continue;
    }
    for (const n of names) if (match(n)) out.push(path.join(d, n));
  }
  return out;
}
