import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/cli/main.js');

/** Whether a tool is installed. In CI a missing tool fails the test; elsewhere the test is skipped with a hint. */
export function haveTool(cmd: string, installHint: string): boolean {
  const ok = spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
  if (!ok && process.env.CI === 'true') throw new Error(`${cmd} is required in CI: ${installHint}`);
  if (!ok) console.warn(`skipping: ${cmd} is not installed (${installHint})`);
  return ok;
}

export const HAVE_RESTIC = haveTool('restic', 'apt-get install -y restic');

/** Folders tempDir made in this test file: removed once its tests are done (see cleanup.ts). */
const madeDirs: string[] = [];

export async function tempDir(prefix = 'cairn-test-'): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

/** Removes every folder tempDir made so far; a test run would otherwise leave gigabytes in /tmp. */
export async function removeTempDirs(): Promise<void> {
  const dirs = madeDirs.splice(0);
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true, maxRetries: 3 })));
}

export interface RunResult {
  code: number;
  stdout: Buffer;
  stderr: string;
  out: string;
}

/** Runs a command without a shell; `input` goes to stdin. `env` adds to this process's environment, unless `exactEnv`. */
export function runCommand(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; exactEnv?: boolean; input?: Buffer | string; cwd?: string; uid?: number; gid?: number; onSpawn?: (pid: number) => void } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.exactEnv ? opts.env : { ...process.env, ...opts.env }, cwd: opts.cwd, uid: opts.uid, gid: opts.gid, stdio: ['pipe', 'pipe', 'pipe'] });
    if (child.pid !== undefined) opts.onSpawn?.(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      const stdout = Buffer.concat(out);
      resolve({ code: code ?? -1, stdout, out: stdout.toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** A repository with a password file, used by both cairn and restic. */
export interface TestRepo {
  dir: string;
  passwordFile: string;
  env: NodeJS.ProcessEnv;
}

export async function makeRepoPaths(password = 'correct horse battery staple'): Promise<TestRepo> {
  const base = await tempDir('cairn-repo-');
  const passwordFile = path.join(base, 'password');
  await fs.writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  const dir = path.join(base, 'repo');
  return {
    dir,
    passwordFile,
    env: {
      CAIRN_REPOSITORY: dir,
      CAIRN_PASSWORD_FILE: passwordFile,
      RESTIC_REPOSITORY: dir,
      RESTIC_PASSWORD_FILE: passwordFile,
      RESTIC_CACHE_DIR: path.join(base, 'restic-cache'),
      CAIRN_CACHE_DIR: path.join(base, 'cairn-cache'),
      CAIRN_KDF_N: '1024',
    },
  };
}

export function cairn(repo: TestRepo, args: string[], opts: { input?: Buffer | string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number; onSpawn?: (pid: number) => void } = {}): Promise<RunResult> {
  return runCommand(process.execPath, [CLI, ...args], { env: { ...repo.env, ...opts.env }, input: opts.input, uid: opts.uid, gid: opts.gid, onSpawn: opts.onSpawn });
}

/**
 * restic's commands that only read. restic waits 200 ms after writing its lock before it looks
 * again for other clients' locks, so these run with `--no-lock`; the tests of how the two tools'
 * locks meet use the commands that write (backup, forget, prune), which lock as restic always does.
 */
const RESTIC_READS = new Set(['cat', 'check', 'diff', 'dump', 'find', 'list', 'ls', 'restore', 'snapshots', 'stats']);

export function restic(repo: TestRepo, args: string[], opts: { input?: Buffer | string } = {}): Promise<RunResult> {
  const noLock = RESTIC_READS.has(args[0]) && !args.includes('--no-lock') ? ['--no-lock'] : [];
  return runCommand('restic', [...noLock, ...args], { env: repo.env, input: opts.input });
}

/** Fails with the command's output, so a broken run explains itself. */
export function ok(r: RunResult, what: string): RunResult {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\nstdout: ${r.out.slice(0, 4000)}\nstderr: ${r.stderr.slice(0, 4000)}`);
  return r;
}

/** A snapshot as `restic snapshots --json` lists it (the fields tests look at). */
export interface ListedSnapshot {
  id: string;
  time: string;
  tree: string;
  paths: string[];
  hostname: string;
  tags?: string[];
  original?: string;
  summary?: unknown;
}

/** The repository's snapshots, as restic lists them. */
export async function resticSnapshots(repo: TestRepo): Promise<ListedSnapshot[]> {
  return JSON.parse(ok(await restic(repo, ['snapshots', '--json']), 'restic snapshots').out) as ListedSnapshot[];
}
