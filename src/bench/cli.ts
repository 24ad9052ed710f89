import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI script. */
export const CLI = path.join(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..'), 'dist/cli/main.js');

/** The node options in a script's `#!/usr/bin/env -S node …` line: what the installed `cairn` runs with. */
function shebangOptions(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first);
  return m ? m[1].trim().split(/\s+/) : [];
}

/** Arguments for `node` that run `cairn ARGS…` as the installed command does (with its node options). */
export function cairnArgv(...args: string[]): string[] {
  return [...shebangOptions(CLI), CLI, ...args];
}
