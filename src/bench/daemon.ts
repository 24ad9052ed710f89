/**
 * `npm run bench:daemon`: the backup service's own figures, printed as one JSON document.
 * - Change to snapshot: a watched tree of 100,000 small files (CAIRN_BENCH_FILES to change it) in
 *   a daemon started fresh; one file is changed at a time and the time until the job that saves
 *   the snapshot is done is measured (default watch settings: 1 s debounce).
 * - Idle cost: a daemon with 20 plans (10 on daily schedules, 10 watching small folders) left alone
 *   for CAIRN_BENCH_IDLE_S seconds (default 30): CPU share and resident memory.
 * The tree is built once under .bench/ and reused.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CAIRN_ENV, cairnArgv } from './cli.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BENCH = process.env.CAIRN_BENCH_DIR ?? path.join(ROOT, '.bench');
const FILES = Number(process.env.CAIRN_BENCH_FILES ?? 100_000);
const IDLE_S = Number(process.env.CAIRN_BENCH_IDLE_S ?? 30);
const CHANGES = 5;
const TICK = 100;

interface Daemon {
  child: ChildProcess;
  url: string;
  token: string;
  dataDir: string;
}

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Builds the tree unless an earlier run left it complete; returns whether it was built. */
async function makeTree(dir: string, files: number): Promise<boolean> {
  const done = path.join(dir, '.complete');
  if (existsSync(done)) return false;
  await fs.rm(dir, { recursive: true, force: true });
  const perDir = 1000;
  for (let i = 0; i < files; i++) {
    const sub = path.join(dir, `d${String(Math.floor(i / perDir)).padStart(4, '0')}`);
    if (i % perDir === 0) await fs.mkdir(sub, { recursive: true });
    await fs.writeFile(path.join(sub, `f${i}.txt`), `file ${i}\n`.repeat(1 + (i % 20)));
  }
  await fs.writeFile(done, '');
  return true;
}

async function startDaemon(dataDir: string): Promise<Daemon> {
  await fs.rm(dataDir, { recursive: true, force: true });
  await fs.mkdir(dataDir, { recursive: true });
  const child = spawn(process.execPath, cairnArgv('daemon', '--data-dir', dataDir, '--listen', '127.0.0.1:0'), { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, ...CAIRN_ENV, CAIRN_LOG_LEVEL: 'warn' } });
  const info = path.join(dataDir, 'daemon.json');
  for (let i = 0; i < 300 && !existsSync(info); i++) await sleep(TICK);
  const { url } = JSON.parse(readFileSync(info, 'utf8')) as { url: string };
  return { child, url, token: readFileSync(path.join(dataDir, 'api-token'), 'utf8').trim(), dataDir };
}

async function api<T>(d: Daemon, method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`${d.url}${route}`, { method, headers: { authorization: `Bearer ${d.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

interface Job {
  state: string;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

async function doneSince(d: Daemon, plan: string, since: number): Promise<Job | undefined> {
  const { jobs } = await api<{ jobs: Job[] }>(d, 'GET', `/api/v1/jobs?plan=${plan}&state=done`);
  return jobs.find((j) => Date.parse(j.createdAt) >= since);
}

async function waitDone(d: Daemon, plan: string, since: number, timeoutMs = 600_000): Promise<Job> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const j = await doneSince(d, plan, since);
    if (j) return j;
    await sleep(TICK);
  }
  throw new Error(`no job of ${plan} finished within ${timeoutMs} ms`);
}

async function stop(d: Daemon): Promise<void> {
  const exited = new Promise((r) => d.child.once('exit', r));
  d.child.kill('SIGTERM');
  await exited;
}

/** CPU seconds (user + system) and resident MiB of a process, from /proc. */
async function usage(pid: number): Promise<{ cpuS: number; rssMiB: number }> {
  const stat = (await fs.readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(await fs.readFile(`/proc/${pid}/status`, 'utf8'))![1]);
  return { cpuS: ticks / 100, rssMiB: rssKb / 1024 };
}

async function latency(): Promise<Record<string, unknown>> {
  const tree = path.join(BENCH, `daemon-tree-${FILES}`);
  const t0 = Date.now();
  const built = (await makeTree(tree, FILES)) ? round((Date.now() - t0) / 1000) : 'reused';
  const d = await startDaemon(path.join(BENCH, 'daemon-latency'));
  try {
    const added = Date.now();
    await api(d, 'POST', '/api/v1/plans', { name: 'tree', sources: [{ path: tree }], watch: true });
    const first = await waitDone(d, 'tree', added);
    const initial = (Date.parse(first.finishedAt!) - added) / 1000;
    const samples: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const at = Date.now();
      await fs.appendFile(path.join(tree, 'd0000', `f${i}.txt`), `change ${at}\n`);
      const job = await waitDone(d, 'tree', at);
      samples.push(round((Date.parse(job.finishedAt!) - at) / 1000));
    }
    const sorted = [...samples].sort((a, b) => a - b);
    return { files: FILES, tree_build_s: built, initial_backup_s: round(initial), change_to_snapshot_s: samples, median_s: sorted[Math.floor(sorted.length / 2)], max_s: sorted.at(-1) };
  } finally {
    await stop(d);
  }
}

async function idle(): Promise<Record<string, unknown>> {
  const small = path.join(BENCH, 'daemon-small');
  for (let i = 0; i < 10; i++) {
    await fs.mkdir(path.join(small, `w${i}`), { recursive: true });
    await fs.writeFile(path.join(small, `w${i}`, 'a.txt'), `folder ${i}\n`);
  }
  const d = await startDaemon(path.join(BENCH, 'daemon-idle'));
  try {
    const since = Date.now();
    for (let i = 0; i < 10; i++) await api(d, 'POST', '/api/v1/plans', { name: `daily${i}`, sources: [{ path: path.join(small, `w${i}`) }], schedule: `${i} 3 * * *` });
    for (let i = 0; i < 10; i++) await api(d, 'POST', '/api/v1/plans', { name: `watch${i}`, sources: [{ path: path.join(small, `w${i}`) }], watch: true });
    for (let i = 0; i < 10; i++) await waitDone(d, `watch${i}`, since);
    await sleep(2000);
    const a = await usage(d.child.pid!);
    await sleep(IDLE_S * 1000);
    const b = await usage(d.child.pid!);
    return { plans: 20, seconds: IDLE_S, cpu_percent: round(((b.cpuS - a.cpuS) / IDLE_S) * 100), rss_mib: round(b.rssMiB, 1) };
  } finally {
    await stop(d);
  }
}

await fs.mkdir(BENCH, { recursive: true });
const which = process.argv[2];
const result = {
  machine: { cpus: os.cpus().length, node: process.version },
  ...(which !== 'idle' && { latency: await latency() }),
  ...(which !== 'latency' && { idle: await idle() }),
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
await fs.writeFile(path.join(BENCH, 'daemon-latest.json'), `${JSON.stringify(result, null, 2)}\n`);
