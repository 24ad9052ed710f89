/**
 * Crashes at random moments: `cairn backup` and `cairn prune` are killed with SIGKILL, ROUNDS times
 * each (12, or CAIRN_CRASH_ROUNDS), at a moment drawn from a seeded generator (the seed is printed;
 * CAIRN_CRASH_SEED replays a run). Every run draws new moments; twelve rounds of each take about a
 * minute on two slow cores, where twenty took two, a tenth of the suite's time.
 * After every kill restic's check accepts the repository (after `restic unlock`, which removes the
 * dead process's lock as restic's own rules allow), the next backup succeeds, and at the end every
 * snapshot that was written restores identical to the tree it was taken of.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, seededBytes, textBytes, type Entry } from '../support/trees.js';

const SEED = Number(process.env.CAIRN_CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));
const ROUNDS = Math.max(1, Math.floor(Number(process.env.CAIRN_CRASH_ROUNDS)) || 12);

/** mulberry32: small, seeded, good enough to pick moments and files. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs the CLI and kills it with SIGKILL after `ms`; resolves with the exit code (null when killed). */
function runKilled(repo: TestRepo, args: string[], ms: number): Promise<{ code: number | null; killed: boolean; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...repo.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== null && code !== 0) reject(new Error(`cairn ${args.join(' ')} exited ${code} before the kill: ${err}`));
      else resolve({ code, killed: signal === 'SIGKILL', ms: Date.now() - t0 });
    });
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = Date.now();
  await fn();
  return Date.now() - t0;
}

/** Changes the tree a little: rewrites, appends, adds and deletes files, chosen by `rnd`. */
async function mutate(src: string, rnd: () => number, round: number): Promise<void> {
  const files = (await fs.readdir(src, { recursive: true, withFileTypes: true })).filter((d) => d.isFile()).map((d) => path.join(d.parentPath, d.name));
  for (let i = 0; i < 6 && files.length > 0; i++) {
    const f = files[Math.floor(rnd() * files.length)];
    const pick = rnd();
    if (pick < 0.4) await fs.writeFile(f, seededBytes(round * 1000 + i, 20_000 + Math.floor(rnd() * 400_000)));
    else if (pick < 0.7) await fs.appendFile(f, textBytes(round * 1000 + i, 5_000));
    else await fs.rm(f, { force: true });
  }
  const dir = path.join(src, `round-${round}`);
  await fs.mkdir(dir, { recursive: true });
  await fs.writeFile(path.join(dir, 'new.bin'), seededBytes(round * 7919, 300_000 + Math.floor(rnd() * 900_000)));
  await fs.writeFile(path.join(dir, 'new.txt'), textBytes(round, 50_000));
}

async function makeSource(): Promise<string> {
  const src = await tempDir('cairn-crash-src-');
  for (let d = 0; d < 8; d++) {
    await fs.mkdir(path.join(src, `d${d}`));
    for (let i = 0; i < 25; i++) await fs.writeFile(path.join(src, `d${d}`, `f${i}`), i % 3 === 0 ? seededBytes(d * 100 + i, 40_000 + i * 3_000) : textBytes(d * 100 + i, 8_000 + i * 500));
  }
  await fs.writeFile(path.join(src, 'big.bin'), seededBytes(4242, 3 * 1024 * 1024));
  return src;
}

interface Taken {
  id: string;
  tag: string;
}

async function snapshotsByTag(repo: TestRepo): Promise<Taken[]> {
  const list = JSON.parse(ok(await restic(repo, ['snapshots', '--json']), 'restic snapshots').out) as { id: string; tags?: string[] }[];
  return list.map((s) => ({ id: s.id, tag: (s.tags ?? [])[0] ?? '' }));
}

/** restic check must accept the repository; a dead process's lock is removed first, as a user would. */
async function checkAfterKill(repo: TestRepo, what: string): Promise<void> {
  ok(await restic(repo, ['unlock']), `restic unlock after ${what}`);
  ok(await restic(repo, ['check']), `restic check after ${what} (seed ${SEED})`);
}

/** Every snapshot restores (with restic) identical to the tree recorded for its tag. */
async function restoreAll(repo: TestRepo, states: Map<string, Map<string, Entry>>, src: string): Promise<number> {
  let n = 0;
  for (const s of await snapshotsByTag(repo)) {
    const want = states.get(s.tag);
    expect(want, `snapshot ${s.id} has tag ${s.tag}`).toBeDefined();
    const target = await tempDir('cairn-crash-restore-');
    ok(await restic(repo, ['restore', s.id, '--target', target]), `restic restore ${s.id}`);
    expect(compareTrees(want!, await describeTree(path.join(target, src)), 1000n), `snapshot ${s.id} (${s.tag}), seed ${SEED}`).toEqual([]);
    await fs.rm(target, { recursive: true, force: true });
    n++;
  }
  return n;
}

describe.runIf(HAVE_RESTIC)('crashes at random moments', () => {
  console.log(`crash test seed: ${SEED} (set CAIRN_CRASH_SEED=${SEED} to replay)`);

  it(`cairn backup killed ${ROUNDS} times: restic check passes, the next backup succeeds, every snapshot restores`, { timeout: 300_000 }, async () => {
    const rnd = prng(SEED);
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const src = await makeSource();
    const states = new Map<string, Map<string, Entry>>();
    states.set('base', await describeTree(src));
    // Each kill is drawn from the span of the last whole backup. The later backups read only what
    // changed: drawn from the first one's span, about half of them ended before their kill.
    let span = await timed(async () => ok(await cairn(repo, ['backup', '--tag', 'base', src]), 'first backup'));
    let killed = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await mutate(src, rnd, round);
      states.set(`r${round}`, await describeTree(src));
      const r = await runKilled(repo, ['backup', '--tag', `r${round}`, src], Math.floor(rnd() * span * 1.1));
      if (r.killed) killed++;
      await checkAfterKill(repo, `backup killed in round ${round} after ${r.ms} ms`);
      span = await timed(async () => ok(await cairn(repo, ['backup', '--tag', `r${round}`, src]), `backup after the kill in round ${round}`));
    }
    console.log(`backup killed ${killed} of ${ROUNDS} times`);
    expect(killed).toBeGreaterThanOrEqual(ROUNDS / 2);
    ok(await restic(repo, ['check', '--read-data']), 'restic check --read-data at the end');
    expect(await restoreAll(repo, states, src)).toBeGreaterThanOrEqual(ROUNDS + 1);
  });

  it(`cairn prune killed ${ROUNDS} times: restic check passes, the next backup succeeds, every kept snapshot restores`, { timeout: 300_000 }, async () => {
    const rnd = prng(SEED ^ 0x5bd1e995);
    const repo = await makeRepoPaths();
    ok(await cairn(repo, ['init']), 'init');
    const src = await makeSource();
    const states = new Map<string, Map<string, Entry>>();
    states.set('base', await describeTree(src));
    ok(await cairn(repo, ['backup', '--tag', 'base', src]), 'first backup');
    let pruneMs = 0;
    let killed = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await mutate(src, rnd, round);
      states.set(`r${round}`, await describeTree(src));
      ok(await cairn(repo, ['backup', '--tag', `r${round}`, src]), `backup in round ${round}`);
      ok(await cairn(repo, ['forget', '--keep-last', '3']), `forget in round ${round}`);
      if (round === 0) {
        // One whole prune, to learn how long one takes here; the kills are drawn from that span.
        pruneMs = await timed(async () => ok(await cairn(repo, ['prune', '--max-unused', '0']), 'first prune'));
        continue;
      }
      const args = rnd() < 0.3 ? ['forget', '--keep-last', '2', '--prune', '--max-unused', '0'] : ['prune', '--max-unused', '0'];
      const r = await runKilled(repo, args, Math.floor(rnd() * pruneMs * 1.1));
      if (r.killed) killed++;
      await checkAfterKill(repo, `${args[0]} killed in round ${round} after ${r.ms} ms`);
      const latest = await snapshotsByTag(repo);
      expect(latest.length).toBeGreaterThanOrEqual(2);
    }
    expect(killed).toBeGreaterThanOrEqual(ROUNDS / 2);
    ok(await cairn(repo, ['prune', '--max-unused', '0']), 'a whole prune at the end');
    ok(await restic(repo, ['check', '--read-data']), 'restic check --read-data at the end');
    expect(await restoreAll(repo, states, src)).toBeGreaterThanOrEqual(2);
    ok(await cairn(repo, ['backup', '--tag', 'final', src]), 'a backup after it all');
  });
});
