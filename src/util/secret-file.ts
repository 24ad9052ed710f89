/** Reading secrets from files, and comparing them, the same way everywhere. */
import { createHash, timingSafeEqual } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { CairnError } from '../errors.js';

function readText(file: string, what: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot read ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Go's unicode.IsSpace characters at either end, which strings.TrimSpace removes. */
const GO_TRIM = /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/gu;

/**
 * A password file as restic reads it: the whole file with white space trimmed from both ends (Go's
 * strings.TrimSpace), so that restic and Cairn open a repository with the same file.
 */
export function readPasswordFile(file: string, what = 'password'): string {
  return readText(file, what).replace(GO_TRIM, '');
}

/**
 * The passwords a password file may stand for, to try in turn: restic's reading (readPasswordFile),
 * then, when it differs, the file's first line exactly, as earlier versions of Cairn read them:
 * keys made from such a file with spaces around the password, or a second line, open that way only.
 */
export function passwordFileCandidates(file: string, what = 'password'): string[] {
  const text = readText(file, what);
  const restic = text.replace(GO_TRIM, '');
  const firstLine = text.split(/\r?\n/)[0];
  return firstLine === restic ? [restic] : [restic, firstLine];
}

/** A token or URL from a file: the first line, trimmed, and not empty. */
export function readSecretFile(file: string, what: string): string {
  const line = readText(file, what).split(/\r?\n/)[0].trim();
  if (line === '') throw new CairnError('BAD_INPUT', `${what} file ${file} is empty`);
  return line;
}

/** Compares two secrets in time independent of where they differ (and of their lengths). */
export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Splits a command line into words as a shell would, without running a shell: white space
 * separates words, '…' keeps everything literally, "…" keeps all but \" and \\ (escapes), and a
 * backslash outside quotes escapes the next character. Unbalanced quotes are `BAD_INPUT`.
 */
export function splitCommandLine(line: string, what: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
    } else if (quote === '"') {
      if (c === '"') quote = null;
      else if (c === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) {
      word = (word ?? '') + line[++i];
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word);
      word = null;
    } else {
      word = (word ?? '') + c;
    }
  }
  if (quote) throw new CairnError('BAD_INPUT', `${what}: unbalanced ${quote} quote`);
  if (word !== null) words.push(word);
  if (words.length === 0) throw new CairnError('BAD_INPUT', `${what} is empty`);
  return words;
}

/**
 * A password from a command, as restic's --password-command: the command line is split into
 * words (splitCommandLine) and run without a shell, its standard error goes to ours, and its
 * output, trimmed as a password file is, is the password. A command that fails or prints nothing
 * is `BAD_INPUT`; the message names the command, never its output.
 */
export function readPasswordCommand(line: string, what = '--password-command'): string {
  const [cmd, ...args] = splitCommandLine(line, what);
  const r = spawnSync(cmd, args, { stdio: ['inherit', 'pipe', 'inherit'], maxBuffer: 1024 * 1024 });
  if (r.error) throw new CairnError('BAD_INPUT', `${what} ${JSON.stringify(cmd)} could not run: ${(r.error as NodeJS.ErrnoException).code ?? r.error.message}`);
  if (r.status !== 0) throw new CairnError('BAD_INPUT', `${what} ${JSON.stringify(cmd)} failed (${r.status === null ? `signal ${r.signal}` : `exit code ${r.status}`})`);
  const password = r.stdout.toString('utf8').replace(GO_TRIM, '');
  if (password === '') throw new CairnError('BAD_INPUT', `${what} ${JSON.stringify(cmd)} printed no password`);
  return password;
}
