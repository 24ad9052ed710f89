/**
 * `npm run bench`: Cairn beside restic on the shared corpus. Prints one JSON document with wall
 * seconds, CPU seconds, peak RSS and MiB/s for each step, restic's figures for the same work and
 * the ratios. Every step but prune runs CAIRN_BENCH_RUNS times (3) and reports its median run,
 * with every run's wall time. The corpus (~1.1 GB) is built once under .bench/ and reused. After
 * the local steps come remote repositories (s3rver, rclone serve restic; CAIRN_BENCH_REMOTE=0
 * skips them), the receiver, db-dump and the service (CAIRN_BENCH_DAEMON=0 skips it).
 * `npm run bench -- remote|receiver|db-dump` runs one part alone; `npm run bench:daemon` the
 * service's. Cairn's figures end with reads through `cairn mount` (CAIRN_BENCH_MOUNT=0 skips them).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchReceiver } from './receiver.js';
import { CAIRN_ENV, cairnArgv } from './cli.js';
import { benchDbDump } from './db-dump.js';
import { benchMount } from './mount.js';
import { startChildServer } from '../util/child-server.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BENCH = process.env.CAIRN_BENCH_DIR ?? path.join(ROOT, '.bench');
const SHARED = process.env.CAIRN_SHARED_DIR ?? path.resolve(ROOT, '../shared');

interface Measure {
  wall_s: number;
  cpu_s: number;
  peak_rss_mib: number;
  mib_per_s?: number;
  /** For a step run several times (RUNS): every run's wall time, in order; the other figures are the median run's. */
  runs_wall_s?: number[];
}

/**
 * Every step but prune runs this many times, and the run of median wall time is reported: one
 * run on a noisy machine can be 15% off either way.
 */
const RUNS = Math.max(1, Math.floor(Number(process.env.CAIRN_BENCH_RUNS) || 3));

/** Runs a step RUNS times, `before` each run; the run of median wall time, with every run's wall time. */
async function repeated(step: () => Promise<Measure>, before?: () => Promise<void>): Promise<Measure> {
  const all: Measure[] = [];
  for (let i = 0; i < RUNS; i++) {
    await before?.();
    all.push(await step());
  }
  if (all.length === 1) return all[0];
  const median = [...all].sort((a, b) => a.wall_s - b.wall_s)[Math.floor((all.length - 1) / 2)];
  return { ...median, runs_wall_s: all.map((m) => m.wall_s) };
}

/** Runs a command under GNU time, which reports the child's CPU time and peak RSS. */
async function measure(cmd: string, args: string[], env: NodeJS.ProcessEnv, bytes?: number): Promise<Measure> {
  const timeFile = path.join(BENCH, 'time.out');
  const start = process.hrtime.bigint();
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn('/usr/bin/time', ['-o', timeFile, '-f', '%U %S %M', cmd, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (c) => (c === 0 ? resolve(0) : reject(new Error(`${cmd} ${args.join(' ')} exited ${c}: ${err}`))));
  });
  void code;
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  const [user, sys, rssKb] = (await fs.readFile(timeFile, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number);
  const m: Measure = { wall_s: round(wall), cpu_s: round(user + sys), peak_rss_mib: round(rssKb / 1024) };
  if (bytes) m.mib_per_s = round(bytes / 1048576 / wall);
  return m;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

async function duBytes(dir: string): Promise<number> {
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(r.stdout.split('\t')[0]);
}

/** The total size of the regular files under `dir`. */
function fileBytes(dir: string): number {
  const r = spawnSync('find', [dir, '-type', 'f', '-printf', '%s\\n'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  return r.stdout.split('\n').reduce((sum, l) => sum + (Number(l) || 0), 0);
}

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
}

/** Folders `<name>-1`, `<name>-2`, … under BENCH, one per run, none there yet (leftovers of an earlier bench are removed). */
async function freshFolders(name: string): Promise<{ next: () => string; removeAll: () => Promise<void> }> {
  let runs = 0;
  const removeAll = async (): Promise<void> => {
    for (const entry of await fs.readdir(BENCH)) {
      if (entry.startsWith(`${name}-`)) await fs.rm(path.join(BENCH, entry), { recursive: true, force: true });
    }
  };
  await removeAll();
  return {
    next: () => path.join(BENCH, `${name}-${++runs}`),
    removeAll,
  };
}

/** A tool's environment for a repository: location, password file and local cache, for Cairn and restic alike. */
function toolEnv(tool: 'cairn' | 'restic', location: string, pw: string): NodeJS.ProcessEnv {
  return {
    ...(tool === 'cairn' ? CAIRN_ENV : {}),
    CAIRN_REPOSITORY: location,
    CAIRN_PASSWORD_FILE: pw,
    RESTIC_REPOSITORY: location,
    RESTIC_PASSWORD_FILE: pw,
    RESTIC_CACHE_DIR: path.join(BENCH, 'restic-cache'),
    CAIRN_CACHE_DIR: path.join(BENCH, 'cairn-cache'),
  };
}

/**
 * Writes out what earlier steps left dirty, then drops the page cache. Without the sync a step
 * ran beside the write-back of the one before (a restore or `cp -a` leaves ~1 GiB to write; the
 * three runs of `cp -a` took 3.4, 6.5 and 8.1 s), and dirty pages are not dropped.
 */
async function dropCaches(): Promise<void> {
  await sh('sync', []);
  // Only root may; elsewhere every tool reads from a warm cache alike.
  await fs.writeFile('/proc/sys/vm/drop_caches', '3').catch(() => undefined);
}

async function runTool(tool: 'cairn' | 'restic', corpus: string, bytes: number): Promise<Record<string, unknown>> {
  const repo = path.join(BENCH, `${tool}-repo`);
  const work = path.join(BENCH, `${tool}-corpus`);
  await fs.rm(repo, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
  await sh('cp', ['-a', corpus, work]);
  const pw = path.join(BENCH, 'password');
  await fs.writeFile(pw, 'benchmark password\n', { mode: 0o600 });
  const env = toolEnv(tool, repo, pw);
  const exe = tool === 'cairn' ? process.execPath : 'restic';
  const pre = tool === 'cairn' ? cairnArgv() : [];
  const out: Record<string, unknown> = {};
  // Each initial backup goes into a new repository, from a cold cache.
  out.initial_backup = await repeated(
    () => measure(exe, [...pre, 'backup', '-q', work], env, bytes),
    async () => {
      await fs.rm(repo, { recursive: true, force: true });
      await sh(exe, [...pre, 'init'], env);
      await dropCaches();
    },
  );
  out.repository_mib = round((await duBytes(repo)) / 1048576);
  out.unchanged_backup = await repeated(() => measure(exe, [...pre, 'backup', '-q', work], env, bytes));
  // Each backup after a mutation of its own (seeds 1, 2, …), written out before the backup starts.
  let seed = 0;
  const mutate = async (): Promise<void> => {
    await sh('bash', [path.join(SHARED, 'bench/mutate-corpus.sh'), work, String(++seed)]);
    await sh('sync', []);
  };
  out.mutated_backup = await repeated(() => measure(exe, [...pre, 'backup', '-q', work], env, bytes), mutate);
  // Each restore into a folder of its own, all removed together afterwards: a tree of many files
  // made right where one was just removed can send ext4's inode allocator into long scans.
  const targets = await freshFolders(`${tool}-restore`);
  out.restore = await repeated(() => measure(exe, [...pre, 'restore', '-q', 'latest', '--target', targets.next()], env, bytes), dropCaches);
  await targets.removeAll();
  out.check_read_data = await repeated(() => measure(exe, [...pre, 'check', '-q', '--read-data'], env), dropCaches);
  // More backups after mutations, up to the eighth; forget all but the last five (those after
  // mutations 4-8), then prune. Whatever RUNS is, prune finds the same data unused: the extra
  // snapshots of the repeated steps hold only what the ones before them do.
  while (seed < 8) {
    await mutate();
    await sh(exe, [...pre, 'backup', '-q', work], env);
  }
  await sh(exe, [...pre, 'forget', '-q', '--keep-last', '5'], env);
  out.repository_before_prune_mib = round((await duBytes(repo)) / 1048576);
  out.prune = await measure(exe, [...pre, 'prune', '-q'], env);
  out.repository_after_prune_mib = round((await duBytes(repo)) / 1048576);
  // restic 0.14's mount needs FUSE 2's fusermount, which Debian's fuse3 replaces: Cairn's alone.
  if (tool === 'cairn' && process.env.CAIRN_BENCH_MOUNT !== '0') out.mount = await benchMount(pre, env, BENCH, work, dropCaches).catch((err: Error) => ({ skipped: err.message.split('\n')[0] }));
  await fs.rm(work, { recursive: true, force: true });
  return out;
}

/** An initial backup of the corpus into `location`, an unchanged one, then a restore, measured. */
async function backupAndRestore(tool: 'cairn' | 'restic', location: string, corpus: string, bytes: number, env: NodeJS.ProcessEnv, target: string): Promise<Record<string, Measure>> {
  const pw = path.join(BENCH, 'password');
  await fs.writeFile(pw, 'benchmark password\n', { mode: 0o600 });
  const all = { ...env, ...toolEnv(tool, location, pw) };
  const exe = tool === 'cairn' ? process.execPath : 'restic';
  const pre = tool === 'cairn' ? cairnArgv() : [];
  await sh(exe, [...pre, 'init'], all);
  await dropCaches();
  const initial_backup = await measure(exe, [...pre, 'backup', '-q', corpus], all, bytes);
  // Its parent's snapshot and trees come from each tool's local cache, as far as the tool fills it.
  const unchanged_backup = await measure(exe, [...pre, 'backup', '-q', corpus], all, bytes);
  await dropCaches();
  const restore = await measure(exe, [...pre, 'restore', '-q', 'latest', '--target', target], all, bytes);
  const restored = fileBytes(path.join(target, corpus));
  const want = fileBytes(corpus);
  if (restored !== want) throw new Error(`${tool} restored ${restored} bytes of files from ${location}, not ${want}`);
  return { initial_backup, unchanged_backup, restore };
}

/**
 * Backup and restore through remote repositories on loopback: Cairn to s3rver and to
 * `rclone serve restic`, restic to `rclone serve restic` (restic cannot talk to s3rver).
 */
async function runRemote(corpus: string, bytes: number, haveRestic: boolean): Promise<Record<string, unknown>> {
  const dir = path.join(BENCH, 'remote');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(path.join(dir, 's3rver'), { recursive: true });
  const s3 = await startChildServer(process.execPath, ['--openssl-legacy-provider', path.join(ROOT, 'test/support/s3rver-main.mjs'), path.join(dir, 's3rver'), 'bench'], 'stdout', /^\{"port":(\d+)\}$/);
  const aws = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
  // Each restore into a folder of its own, removed at the end, as in runTool: the REST restores,
  // ~10 s after the removal of the one before, took twice the time and CPU of the first.
  const targets = await freshFolders('remote-restore');
  const out: Record<string, unknown> = {
    note: "restic's S3 client cannot talk to s3rver (s3rver stores its aws-chunked uploads undecoded), so restic is measured over REST to rclone serve restic on loopback, beside Cairn on both",
  };
  try {
    out.cairn_s3rver = await backupAndRestore('cairn', `s3:http://127.0.0.1:${s3.match[1]}/bench/repo`, corpus, bytes, aws, targets.next());
    out.s3rver_repository_mib = round((await duBytes(path.join(dir, 's3rver', 'bench'))) / 1048576);
  } finally {
    await s3.stop();
  }
  const haveRclone = spawnSync('sh', ['-c', 'command -v rclone']).status === 0;
  if (!haveRclone) {
    await targets.removeAll();
    return out;
  }
  const rest = await startChildServer('rclone', ['serve', 'restic', '--addr', '127.0.0.1:0', path.join(dir, 'rest')], 'stderr', /Serving restic REST API on (http:\/\/\S+\/)/, { RCLONE_CONFIG: '/dev/null' });
  try {
    out.cairn_rest = await backupAndRestore('cairn', `rest:${rest.match[1]}cairn/`, corpus, bytes, {}, targets.next());
    if (haveRestic) out.restic_rest = await backupAndRestore('restic', `rest:${rest.match[1]}restic/`, corpus, bytes, {}, targets.next());
  } finally {
    await rest.stop();
    await targets.removeAll();
  }
  await fs.rm(dir, { recursive: true, force: true });
  if (out.restic_rest) {
    const r = out.restic_rest as Record<string, Measure>;
    const ratio = (m: unknown, k: string) => round((m as Record<string, Measure>)[k].wall_s / r[k].wall_s);
    out.cairn_over_restic_rest = {
      s3rver_initial_backup_wall: ratio(out.cairn_s3rver, 'initial_backup'),
      s3rver_restore_wall: ratio(out.cairn_s3rver, 'restore'),
      rest_initial_backup_wall: ratio(out.cairn_rest, 'initial_backup'),
      rest_unchanged_backup_wall: ratio(out.cairn_rest, 'unchanged_backup'),
      rest_restore_wall: ratio(out.cairn_rest, 'restore'),
    };
  }
  return out;
}

/** The service's figures (change-to-snapshot latency, idle cost of 20 plans), from dist/bench/daemon.js in its own process. */
function benchDaemon(): unknown {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/bench/daemon.js')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  if (r.status !== 0) return { failed: `exit ${r.status}` };
  return JSON.parse(r.stdout) as unknown;
}

async function main(): Promise<void> {
  if (process.argv[2] === 'receiver') {
    process.stdout.write(`${JSON.stringify({ receiver: await benchReceiver(BENCH) }, null, 2)}\n`);
    return;
  }
  if (process.argv[2] === 'db-dump') {
    process.stdout.write(`${JSON.stringify({ db_dump: await benchDbDump() }, null, 2)}\n`);
    return;
  }
  await fs.mkdir(BENCH, { recursive: true });
  const corpus = path.join(BENCH, 'corpus');
  if (!existsSync(corpus)) await sh('bash', [path.join(SHARED, 'bench/make-corpus.sh'), corpus]);
  const bytes = await duBytes(corpus);
  const result: Record<string, unknown> = { corpus_mib: round(bytes / 1048576), cores: os.availableParallelism() };

  const only = process.argv[2];
  const haveRestic = spawnSync('sh', ['-c', 'command -v restic']).status === 0;
  if (only === 'remote') {
    result.remote = await runRemote(corpus, bytes, haveRestic);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }

  const copies = await freshFolders('cp-copy');
  result.cp_a = await repeated(() => measure('cp', ['-a', corpus, copies.next()], {}, bytes), dropCaches);
  await copies.removeAll();

  const cairn = only === 'restic' ? null : await runTool('cairn', corpus, bytes);
  const restic = only === 'cairn' || !haveRestic ? null : await runTool('restic', corpus, bytes);
  result.cairn = cairn;
  result.restic = restic;
  if (cairn && restic) {
    const ratios: Record<string, number> = {};
    for (const k of Object.keys(cairn)) {
      const a = cairn[k];
      const b = restic[k];
      if (typeof a === 'number' && typeof b === 'number') ratios[k] = round(a / b);
      else if (a && b && typeof a === 'object' && typeof b === 'object' && 'wall_s' in a && 'wall_s' in b) ratios[`${k}_wall`] = round((a as Measure).wall_s / (b as Measure).wall_s);
    }
    const cp = result.cp_a as Measure;
    ratios.restore_vs_cp_a = round((cairn.restore as Measure).wall_s / cp.wall_s);
    result.cairn_over_restic = ratios;
  }
  if (only !== 'restic') result.receiver = await benchReceiver(BENCH);
  if (only !== 'restic') {
    // Needs MariaDB; a machine without it still gets the repository figures.
    result.db_dump = await benchDbDump().catch((err: Error) => ({ skipped: err.message.split('\n')[0] }));
  }
  if (process.env.CAIRN_BENCH_REMOTE !== '0') result.remote = await runRemote(corpus, bytes, haveRestic);
  if (only !== 'restic' && process.env.CAIRN_BENCH_DAEMON !== '0') result.daemon = benchDaemon();
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

await main();
