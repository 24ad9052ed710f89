/**
 * `cairn mount` in the benchmark: the repository's latest snapshot read through the kernel's FUSE
 * as a user's tools read it. The largest file is read with `cat` (MiB/s for big files), a folder of
 * many small files is archived with `tar` twice (the first time every call reaches the mount; the
 * second the kernel answers from what it kept), and the mount process's peak RSS is read at the
 * end. Needs fuse-napi, /dev/fuse and root; without them the figures say why they are missing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

interface MountFigures {
  big_file: { file: string; mib: number; wall_s: number; mib_per_s: number };
  small_files: { folder: string; files: number; archive_mib: number; first_wall_s: number; second_wall_s: number; files_per_s: number };
  peak_rss_mib: number;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Runs a shell command; its wall time and what it printed. */
function timed(script: string, ...args: string[]): { wall: number; out: string } {
  const start = process.hrtime.bigint();
  const r = spawnSync('sh', ['-c', script, 'sh', ...args], { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${script} exited ${r.status}: ${r.stderr.toString().slice(-2000)}`);
  return { wall: Number(process.hrtime.bigint() - start) / 1e9, out: r.stdout.toString() };
}

/**
 * Mounts the repository that `env` names at a folder under `work`, and measures reads of
 * `source` (an absolute path the latest snapshot holds): its largest file under `big/` and its
 * folder `small` of many small files (both as the shared corpus lays them out).
 */
export async function benchMount(argv: string[], env: NodeJS.ProcessEnv, work: string, source: string, dropCaches: () => Promise<void>): Promise<MountFigures | { skipped: string }> {
  try {
    createRequire(import.meta.url)('fuse-napi');
  } catch {
    return { skipped: 'fuse-napi is not installed (docs/cli.md: mount)' };
  }
  if (!existsSync('/dev/fuse') || process.getuid?.() !== 0) return { skipped: 'needs /dev/fuse and root' };
  const mnt = path.join(work, 'mount');
  await fs.mkdir(mnt, { recursive: true });
  const child = spawn(process.execPath, [...argv, 'mount', mnt], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const deadline = Date.now() + 120_000;
    while (!out.includes('Now serving')) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`cairn mount did not start: ${out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const root = path.join(mnt, 'snapshots/latest', source);
    const bigDir = path.join(root, 'big');
    const sizes = await Promise.all((await fs.readdir(bigDir)).map(async (f) => ({ f, size: (await fs.stat(path.join(bigDir, f))).size })));
    const big = sizes.sort((a, b) => b.size - a.size)[0];
    await dropCaches();
    const bigWall = timed('cat "$1" > /dev/null', path.join(bigDir, big.f)).wall;
    await dropCaches();
    // Through a pipe: GNU tar reads no file when its archive is /dev/null itself.
    const tar = 'tar -cf - -C "$1" src | wc -c';
    const first = timed(tar, root);
    const second = timed(tar, root).wall;
    const archiveBytes = Number(first.out.trim());
    const files = Number(timed('find "$1" -type f | wc -l', path.join(root, 'src')).out.trim());
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
    return {
      big_file: { file: `big/${big.f}`, mib: round(big.size / 1048576), wall_s: round(bigWall), mib_per_s: round(big.size / 1048576 / bigWall) },
      small_files: { folder: 'src', files, archive_mib: round(archiveBytes / 1048576), first_wall_s: round(first.wall), second_wall_s: round(second), files_per_s: Math.round(files / first.wall) },
      peak_rss_mib: round(hwm / 1024),
    };
  } finally {
    child.kill('SIGINT');
    await exited;
    await fs.rm(mnt, { recursive: true, force: true });
  }
}
