/**
 * `npm run bench`: Cairn beside restic on the shared corpus. Prints one JSON document with wall
 * seconds, CPU seconds, peak RSS and MiB/s for each step, restic's figures for the same work and
 * the ratios. The corpus (~1.1 GB) is built once under .bench/ and reused.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BENCH = process.env.CAIRN_BENCH_DIR ?? path.join(ROOT, '.bench');
const SHARED = process.env.CAIRN_SHARED_DIR ?? path.resolve(ROOT, '../shared');
const CLI = path.join(ROOT, 'dist/cli/main.js');

interface Measure {
  wall_s: number;
  cpu_s: number;
  peak_rss_mib: number;
  mib_per_s?: number;
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

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`);
}

async function dropCaches(): Promise<void> {
  // Only root may; elsewhere every tool reads from a warm cache alike.
  await fs.writeFile('/proc/sys/vm/drop_caches', '3').catch(() => undefined);
}

/** The node options in a script's `#!/usr/bin/env -S node …` line: what the installed `cairn` runs with. */
function shebangOptions(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first);
  return m ? m[1].trim().split(/\s+/) : [];
}

async function runTool(tool: 'cairn' | 'restic', corpus: string, bytes: number): Promise<Record<string, Measure | number>> {
  const repo = path.join(BENCH, `${tool}-repo`);
  const work = path.join(BENCH, `${tool}-corpus`);
  await fs.rm(repo, { recursive: true, force: true });
  await fs.rm(work, { recursive: true, force: true });
  await sh('cp', ['-a', corpus, work]);
  const pw = path.join(BENCH, 'password');
  await fs.writeFile(pw, 'benchmark password\n', { mode: 0o600 });
  const env = { CAIRN_REPOSITORY: repo, CAIRN_PASSWORD_FILE: pw, RESTIC_REPOSITORY: repo, RESTIC_PASSWORD_FILE: pw, RESTIC_CACHE_DIR: path.join(BENCH, 'restic-cache') };
  const exe = tool === 'cairn' ? process.execPath : 'restic';
  const pre = tool === 'cairn' ? [...shebangOptions(CLI), CLI] : [];
  await sh(exe, [...pre, 'init'], env);
  const out: Record<string, Measure | number> = {};
  await dropCaches();
  out.initial_backup = await measure(exe, [...pre, 'backup', '-q', work], env, bytes);
  out.repository_mib = round((await duBytes(repo)) / 1048576);
  out.unchanged_backup = await measure(exe, [...pre, 'backup', '-q', work], env, bytes);
  await sh('bash', [path.join(SHARED, 'bench/mutate-corpus.sh'), work, '1']);
  out.mutated_backup = await measure(exe, [...pre, 'backup', '-q', work], env, bytes);
  const target = path.join(BENCH, `${tool}-restore`);
  await fs.rm(target, { recursive: true, force: true });
  await dropCaches();
  out.restore = await measure(exe, [...pre, 'restore', '-q', 'latest', '--target', target], env, bytes);
  await fs.rm(target, { recursive: true, force: true });
  await dropCaches();
  out.check_read_data = await measure(exe, [...pre, 'check', '-q', '--read-data'], env);
  // Ten snapshots in all (three so far), each after a mutation; forget half, then prune.
  for (let seed = 2; seed <= 8; seed++) {
    await sh('bash', [path.join(SHARED, 'bench/mutate-corpus.sh'), work, String(seed)]);
    await sh(exe, [...pre, 'backup', '-q', work], env);
  }
  await sh(exe, [...pre, 'forget', '-q', '--keep-last', '5'], env);
  out.repository_before_prune_mib = round((await duBytes(repo)) / 1048576);
  out.prune = await measure(exe, [...pre, 'prune', '-q'], env);
  out.repository_after_prune_mib = round((await duBytes(repo)) / 1048576);
  await fs.rm(work, { recursive: true, force: true });
  return out;
}

async function main(): Promise<void> {
  await fs.mkdir(BENCH, { recursive: true });
  const corpus = path.join(BENCH, 'corpus');
  if (!existsSync(corpus)) await sh('bash', [path.join(SHARED, 'bench/make-corpus.sh'), corpus]);
  const bytes = await duBytes(corpus);
  const result: Record<string, unknown> = { corpus_mib: round(bytes / 1048576), cores: os.availableParallelism() };

  const cpTarget = path.join(BENCH, 'cp-copy');
  await fs.rm(cpTarget, { recursive: true, force: true });
  await dropCaches();
  result.cp_a = await measure('cp', ['-a', corpus, cpTarget], {}, bytes);
  await fs.rm(cpTarget, { recursive: true, force: true });

  const only = process.argv[2];
  const cairn = only === 'restic' ? null : await runTool('cairn', corpus, bytes);
  const haveRestic = spawnSync('sh', ['-c', 'command -v restic']).status === 0;
  const restic = only === 'cairn' || !haveRestic ? null : await runTool('restic', corpus, bytes);
  result.cairn = cairn;
  result.restic = restic;
  if (cairn && restic) {
    const ratios: Record<string, number> = {};
    for (const k of Object.keys(cairn)) {
      const a = cairn[k];
      const b = restic[k];
      if (typeof a === 'number' && typeof b === 'number') ratios[k] = round(a / b);
      else if (typeof a === 'object' && typeof b === 'object') ratios[`${k}_wall`] = round(a.wall_s / b.wall_s);
    }
    const cp = result.cp_a as Measure;
    ratios.restore_vs_cp_a = round((cairn.restore as Measure).wall_s / cp.wall_s);
    result.cairn_over_restic = ratios;
  }
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

await main();
