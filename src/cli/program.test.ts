import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, COMMAND_MODULES, commandNamed } from './program.js';

const argv = (...args: string[]): string[] => ['node', 'cairn', ...args];

describe('loading only the command being run', () => {
  it('names, for each command module, exactly the commands it adds', async () => {
    for (const m of COMMAND_MODULES) {
      const program = new Command();
      (await m.load())(program, async () => undefined);
      expect(program.commands.map((c) => c.name())).toEqual(m.names);
    }
  });

  it('loads every module for help or an unknown command, and one module for a known command', async () => {
    const all = await buildProgram(argv('--help'));
    expect(all.commands.map((c) => c.name())).toEqual(['version', ...COMMAND_MODULES.flatMap((m) => m.names)]);
    expect((await buildProgram(argv('help', 'backup'))).commands).toHaveLength(all.commands.length);
    expect((await buildProgram(argv('bakup'))).commands).toHaveLength(all.commands.length);
    expect((await buildProgram(argv('-r', 'repo', 'backup', '/src'))).commands.map((c) => c.name())).toEqual(['version', 'backup']);
    expect((await buildProgram(argv('key', 'list'))).commands.map((c) => c.name())).toEqual(['version', ...COMMAND_MODULES[0].names]);
    expect((await buildProgram(argv('--json', 'version'))).commands.map((c) => c.name())).toEqual(['version']);
  });

  it("finds the command past the program's own options and their values", async () => {
    const program = await buildProgram(argv('--help'));
    const cases: [string[], string | undefined][] = [
      [['backup', '/x'], 'backup'],
      [['-r', 'backup', 'snapshots'], 'snapshots'],
      [['--repo', 'prune', 'ls', 'latest'], 'ls'],
      [['--repo=backup', 'ls'], 'ls'],
      [['-qr', '/repo', 'restore', 'latest'], 'restore'],
      [['-r/repo', 'check'], 'check'],
      [['--json', '-v', '-vv', '--no-cache', 'cat', 'config'], 'cat'],
      [['-o', 's3.storage-class=STANDARD', '--limit-upload', '100', 'init'], 'init'],
      [['--password-command', 'pass show x', 'forget'], 'forget'],
      [['--nope', 'backup'], undefined],
      [['-x', 'backup'], undefined],
      [['--', 'backup'], undefined],
      [['-r', 'repo'], undefined],
      [[], undefined],
    ];
    for (const [args, named] of cases) expect(commandNamed(program, argv(...args)), args.join(' ')).toBe(named);
  });
});
