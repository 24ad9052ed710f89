import fs from 'node:fs/promises';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, haveTool, runCommand, tempDir } from '../support/tools.js';

const HAVE_FISH = haveTool('fish', 'apt-get install -y fish');
const HAVE_ZSH = haveTool('zsh', 'apt-get install -y zsh');
const HAVE_GROFF = haveTool('groff', 'apt-get install -y groff-base') && haveTool('man', 'apt-get install -y man-db');

const generate = (...args: string[]) => runCommand(process.execPath, [CLI, 'generate', ...args]);

let dir: string;
beforeAll(async () => {
  dir = await tempDir();
  const r = await generate('--bash-completion', path.join(dir, 'cairn.bash'), '--zsh-completion', path.join(dir, 'cairn.zsh'), '--fish-completion', path.join(dir, 'cairn.fish'), '--man', path.join(dir, 'man'));
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
});

/** What bash's completion offers for the words (the last one being completed), run by a real bash. */
async function bashCompletes(words: string[], cwd?: string): Promise<string[]> {
  const script = 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 )); _cairn; printf "%s\\n" "${COMPREPLY[@]}"';
  const r = await runCommand('bash', ['-c', script, 'bash', path.join(dir, 'cairn.bash'), ...words], { cwd });
  expect(r.stderr).toBe('');
  return r.out.split('\n').filter(Boolean);
}

describe('cairn generate', () => {
  it('makes a bash completion that completes commands, subcommands, each command\'s options and option values that are files', async () => {
    expect(await bashCompletes(['cairn', 'ba'])).toEqual(['backup']);
    expect(await bashCompletes(['cairn', 'backup', '--ta'])).toEqual(['--tag']);
    // Global options and their values come before the command.
    expect(await bashCompletes(['cairn', '-r', '/srv/repo', '--json', 'key', ''])).toEqual(['list', 'add', 'passwd', 'remove']);
    expect(await bashCompletes(['cairn', 'key', 'add', '--new'])).toEqual(['--new-password-file']);
    // -i takes a pattern in restore and nothing in find: each command's own options decide.
    expect(await bashCompletes(['cairn', 'restore', '-i', '/x', '--ver'])).toEqual(['--verify', '--version', '--verbose']);
    expect(await bashCompletes(['cairn', 'find', '-i', 'pat', '--ho'])).toEqual(['--host']);
    const files = await tempDir();
    await fs.writeFile(path.join(files, 'password.txt'), 'x');
    await fs.mkdir(path.join(files, 'target-dir'));
    expect(await bashCompletes(['cairn', '--password-file', 'pass'], files)).toEqual(['password.txt']);
    expect(await bashCompletes(['cairn', 'restore', 'latest', '--target', 'tar'], files)).toEqual(['target-dir']);
    // A value that is not a file (a tag) gets nothing from the completion.
    expect(await bashCompletes(['cairn', 'backup', '--tag', ''])).toEqual([]);
  });

  it('writes to standard output with "-", and refuses to run with nothing to make or where it cannot write', async () => {
    const r = await generate('--bash-completion', '-');
    expect(r.code).toBe(0);
    expect(r.out).toBe(await fs.readFile(path.join(dir, 'cairn.bash'), 'utf8'));
    const none = await generate();
    expect(none.code).toBe(1);
    expect(none.stderr).toBe('Fatal: nothing to generate: give --bash-completion, --zsh-completion, --fish-completion (a file, or - for standard output) or --man DIR\n');
    const blocked = await generate('--fish-completion', path.join(dir, 'cairn.bash', 'inside'));
    expect(blocked.code).toBe(1);
    expect(blocked.stderr).toMatch(/^Fatal: cannot write .*cairn\.bash\/inside: ENOTDIR/);
  });

  it.runIf(HAVE_FISH)('makes a fish completion that fish takes: commands with their descriptions, subcommands, options', async () => {
    const completes = async (line: string): Promise<string[]> => {
      const r = await runCommand('fish', ['--no-config', '-c', 'source $argv[1]; complete -C $argv[2]', path.join(dir, 'cairn.fish'), line]);
      expect(r.stderr).toBe('');
      return r.out.split('\n').filter(Boolean);
    };
    expect(await completes('cairn ba')).toEqual(['backup\tcreate a new snapshot of files and folders']);
    expect(await completes('cairn backup --ta')).toEqual(['--tag\tadd tags (comma-separated; may be repeated)']);
    expect((await completes('cairn key ')).map((l) => l.split('\t')[0]).sort()).toEqual(['add', 'list', 'passwd', 'remove']);
    expect(await completes('cairn key add --new')).toEqual(['--new-password-file\tfile with the new password']);
  });

  it.runIf(HAVE_ZSH)('makes a zsh completion that zsh loads after compinit, with bash\'s logic through bashcompinit', async () => {
    // zsh calls bash completion functions in sh emulation (arrays from 0), and filters what they offer by the word typed.
    const script = 'autoload -U +X compinit && compinit -u -D; source "$1"; whence -w _cairn; t() { emulate -L sh; setopt kshglob noshglob braceexpand; COMP_WORDS=(cairn key ""); COMP_CWORD=2; _cairn; print -l "${COMPREPLY[@]}"; }; t';
    const r = await runCommand('zsh', ['-f', '-c', script, 'zsh', path.join(dir, 'cairn.zsh')]);
    expect(r.stderr).toBe('');
    expect(r.out.split('\n').filter(Boolean)).toEqual(['_cairn: function', 'list', 'add', 'passwd', 'remove']);
  });

  it.runIf(HAVE_GROFF)('makes a manual page for every command that groff reads without complaint and man shows with its options', async () => {
    const { buildProgram } = await import('../../src/cli/program.js');
    const program = await buildProgram(['node', 'cairn']);
    const names = ['cairn'];
    const walk = (c: typeof program, prefix: string): void => {
      for (const sub of c.commands) {
        if (sub.name() === 'help') continue;
        names.push(`${prefix}-${sub.name()}`);
        walk(sub, `${prefix}-${sub.name()}`);
      }
    };
    walk(program, 'cairn');
    const pages = (await fs.readdir(path.join(dir, 'man'))).sort();
    expect(pages).toEqual(names.map((n) => `${n}.1`).sort());
    for (const page of pages) {
      // Undefined macros, unknown escapes, characters groff cannot take (a line too long to break, the
      // databases' JSON example, is not a fault of the page).
      const r = await runCommand('groff', ['-man', '-Tutf8', '-z', '-wmac', '-wescape', '-wchar', '-winput', '-Wbreak', path.join(dir, 'man', page)]);
      expect(`${page}: ${r.stderr}`).toBe(`${page}: `);
      expect(r.code).toBe(0);
    }
    // Not on a terminal, man prints plain text.
    const backup = await runCommand('man', ['-l', path.join(dir, 'man', 'cairn-backup.1')], { env: { MANWIDTH: '100' } });
    expect(backup.code).toBe(0);
    const text = backup.out;
    expect(text).toMatch(/^CAIRN-BACKUP\(1\)/);
    expect(text).toContain('cairn-backup - create a new snapshot of files and folders');
    expect(text).toContain('--exclude-file <file>');
    expect(text).toContain('GLOBAL OPTIONS');
    expect(text).toContain('repository: a path, s3:… or rest:… (env CAIRN_REPOSITORY)');
    const top = (await runCommand('man', ['-l', path.join(dir, 'man', 'cairn.1')], { env: { MANWIDTH: '100' } })).out;
    // Each command heads an entry of COMMANDS, with its description.
    for (const c of program.commands) if (c.name() !== 'help') expect(top).toMatch(new RegExp(`^ {7}${c.name()}(\n {14}| +)${c.description().split(' ')[0]}`, 'm'));
  });
});
