import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI script. */
export const CLI = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..'), 'dist/cli/main.js');

/** The environment and node options in a script's `#!/usr/bin/env -S [NAME=VALUE…] node …` line: what the installed `cairn` runs with. */
function shebang(script: string): { env: Record<string, string>; options: string[] } {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S ((?:\w+=\S*\s+)*)node (.+)$/.exec(first);
  if (!m) return { env: {}, options: [] };
  const env = Object.fromEntries(m[1].trim().split(/\s+/).filter(Boolean).map((a) => [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]));
  return { env, options: m[2].trim().split(/\s+/) };
}

const SHEBANG = shebang(CLI);

/** Arguments for `node` that run `cairn ARGS…` as the installed command does (with its node options)... */
export function cairnArgv(...args: string[]): string[] {
  return [...SHEBANG.options, CLI, ...args];
}

/** ... and the variables its first line sets, to add to the environment. */
export const CAIRN_ENV: Readonly<Record<string, string>> = SHEBANG.env;
