/**
 * Receiver upload speed beside a plain disk write of the same archive: a 512 MiB stored zip of
 * random bytes is copied with `cp` (then synced), and uploaded with curl to a real `cairn receiver`
 * process, whose peak RSS is read from /proc. Runs alone with `node dist/bench/receiver.js`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/cli/main.js');
const SIZE_MIB = Number(process.env.CAIRN_BENCH_RECEIVER_MIB ?? 512);

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

export async function benchReceiver(benchDir: string): Promise<Record<string, unknown>> {
  const dir = path.join(benchDir, 'receiver');
  await fs.mkdir(dir, { recursive: true });
  const name = `mysql-2026-01-01-00-00-00-bench-${randomUUID()}.sql.zip`;
  const source = path.join(dir, 'dump.sql');
  if (!existsSync(source)) run('sh', ['-c', `head -c ${SIZE_MIB}M /dev/urandom > '${source}'`]);
  const zip = path.join(dir, name);
  run('zip', ['-0', '-q', '-j', zip, source]);
  const bytes = (await fs.stat(zip)).size;
  const mib = bytes / 1048576;

  const copy = path.join(dir, 'copy.zip');
  let t = process.hrtime.bigint();
  run('sh', ['-c', `cp '${zip}' '${copy}' && sync '${copy}'`]);
  const cpWall = Number(process.hrtime.bigint() - t) / 1e9;
  await fs.rm(copy);

  const storage = path.join(dir, 'store');
  await fs.rm(storage, { recursive: true, force: true });
  const child = spawn(process.execPath, [CLI, 'receiver', '--no-log', '--port', '0', '--storage', storage], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      readline.createInterface({ input: child.stdout }).once('line', (l) => resolve(/listening on (\S+)/.exec(l)![1]));
      child.once('exit', (c) => reject(new Error(`receiver exited ${c}`)));
    });
    t = process.hrtime.bigint();
    const status = run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-F', `file=@${zip}`, `${url}/bench`]);
    const upWall = Number(process.hrtime.bigint() - t) / 1e9;
    if (status !== '200') throw new Error(`upload answered ${status}`);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(await fs.readFile(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
    return {
      archive_mib: round(mib),
      plain_copy: { wall_s: round(cpWall), mib_per_s: round(mib / cpWall) },
      receiver_upload: { wall_s: round(upWall), mib_per_s: round(mib / upWall), receiver_peak_rss_mib: round(hwm) },
      upload_vs_copy: round(upWall / cpWall),
    };
  } finally {
    child.kill('SIGTERM');
    await fs.rm(zip, { force: true });
    await fs.rm(storage, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const out = await benchReceiver(process.env.CAIRN_BENCH_DIR ?? path.join(ROOT, '.bench'));
  process.stdout.write(`${JSON.stringify({ receiver: out }, null, 2)}\n`);
}
