import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, ROOT, cairn, makeRepoPaths, ok, runCommand, tempDir } from '../support/tools.js';

/**
 * Every command pays for the modules the CLI loads before it runs: the libraries of one command
 * (archives for dump, the AWS SDK for s3:, the service's server and databases) must load when that
 * command runs, not at every start (a static import of the archive writers once took every
 * command from 0.19 to 0.38 s).
 */
const HEAVY = ['tar-stream', 'yazl', '@aws-sdk', 'fastify', 'kysely', 'mysql2', '/pg/', 'better-sqlite3', 'croner', '@parcel/watcher', 'pino', 'prom-client', 'zod'];

describe('startup', () => {
  it("commands on a local repository load none of the libraries, nor the command modules, that only other commands need", async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    await fs.writeFile(path.join(src, 'f'), 'x');
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    const trace = path.join(await tempDir(), 'modules');
    // Each command loads its own module of src/cli/commands and those it takes helpers from (backup
    // backs up databases with db.js; the browsing commands filter paths as restore does), no other.
    const own: Record<string, string[]> = { snapshots: ['browse', 'restore'], ls: ['browse', 'restore'], backup: ['backup', 'db'], check: ['repo'], restore: ['restore'] };
    for (const args of [['snapshots'], ['ls', 'latest'], ['backup', src], ['check'], ['restore', 'latest', '--target', await tempDir()]]) {
      const r = await runCommand(process.execPath, ['--import', path.join(ROOT, 'test/support/trace-imports.mjs'), CLI, ...args], { env: { ...repo.env, CAIRN_TRACE_IMPORTS: trace } });
      ok(r, args.join(' '));
      const loaded = (await fs.readFile(trace, 'utf8')).split('\n');
      expect(loaded.length, args.join(' ')).toBeGreaterThan(50);
      const commands = loaded.map((url) => /\/dist\/cli\/commands\/([a-z-]+)\.js$/.exec(url)?.[1]).filter((m) => m !== undefined);
      expect(commands.sort(), args.join(' ')).toEqual(own[args[0]]);
      expect(loaded.filter((url) => HEAVY.some((h) => url.includes(`/node_modules/${h.replace(/^\//, '')}`) || (h.startsWith('/') && url.includes(`/node_modules${h}`)))), args.join(' ')).toEqual([]);
    }
  });

  it('runs as the installed command does, through its first line: glibc\'s memory settings and node\'s options apply', async () => {
    // npm makes a package's bin executable when it installs it; the build does not.
    await fs.chmod(CLI, 0o755);
    const probe = path.join(await tempDir(), 'probe.mjs');
    await fs.writeFile(
      probe,
      "process.on('exit', () => process.stderr.write(JSON.stringify({ tunables: process.env.GLIBC_TUNABLES, arenas: process.env.MALLOC_ARENA_MAX, trim: process.env.MALLOC_TRIM_THRESHOLD_, gc: typeof globalThis.gc, options: process.execArgv.filter((a) => a.startsWith('--') && !a.startsWith('--import')) })));\n",
    );
    const r = await runCommand(CLI, ['version'], { env: { NODE_OPTIONS: `--import ${probe}`, GLIBC_TUNABLES: undefined } });
    ok(r, 'version');
    expect(r.out).toMatch(/^cairn \S+ on node v/);
    expect(JSON.parse(r.stderr)).toEqual({
      tunables: 'glibc.malloc.hugetlb=1',
      arenas: '2',
      trim: '33554432',
      gc: 'function',
      options: ['--max-semi-space-size=4', '--heap-growing-percent=30', '--single-threaded-gc', '--expose-gc'],
    });
  });
});
