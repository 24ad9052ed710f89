/**
 * Receiver benchmark: one archive (1 GiB by default, CAIRN_BENCH_RECEIVER_MIB to change) uploaded
 * to a real `cairn receiver` process on this machine, beside a plain synced copy of the same file
 * on the same disk. Both read the file from the page cache; both fsync what they write.
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { uploadArchive } from '../receiver/client.js';
import { writeStoredZip } from './stored-zip.js';
import { CAIRN_ENV, cairnArgv } from './cli.js';

const ARCHIVE = 'mysql-2026-01-01-00-00-00-bench-00000000-0000-4000-8000-000000000000.sql.zip';

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

async function timed(fn: () => Promise<unknown>, bytes: number): Promise<{ wall_s: number; mib_per_s: number }> {
  const start = process.hrtime.bigint();
  await fn();
  const wall = Number(process.hrtime.bigint() - start) / 1e9;
  return { wall_s: round(wall), mib_per_s: round(bytes / 1048576 / wall) };
}

export async function benchReceiver(benchDir: string): Promise<Record<string, unknown>> {
  const mib = Number(process.env.CAIRN_BENCH_RECEIVER_MIB ?? 1024);
  const dir = path.join(benchDir, 'receiver');
  const input = path.join(dir, 'input', ARCHIVE);
  await fs.mkdir(path.dirname(input), { recursive: true });
  const existing = await fs.stat(input).catch(() => undefined);
  // A zip of one stored entry is its content and a few hundred bytes of headers.
  const reusable = existing !== undefined && existing.size - mib * 1048576 > 0 && existing.size - mib * 1048576 < 1024;
  const size = reusable ? existing.size : (await writeStoredZip(input, 'bench.sql', mib * 1048576)).size;

  const copyDir = path.join(dir, 'copy');
  await fs.rm(copyDir, { recursive: true, force: true });
  await fs.mkdir(copyDir);
  const diskCopy = await timed(() => pipeline(createReadStream(input), createWriteStream(path.join(copyDir, ARCHIVE), { flush: true })), size);
  await fs.rm(copyDir, { recursive: true });

  const storage = path.join(dir, 'store');
  await fs.rm(storage, { recursive: true, force: true });
  const child = spawn(process.execPath, cairnArgv('receiver', '--port', '0', '--storage', storage, '--log-level', 'warn'), { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...CAIRN_ENV } });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (http:\/\/\S+?),/.exec(out);
        if (m) resolve(m[1]);
      });
      void exited.then(() => reject(new Error(`cairn receiver exited before listening: ${out}`)));
    });
    const upload = await timed(() => uploadArchive(url, 'bench', input), size);
    const status = await fs.readFile(`/proc/${child.pid}/status`, 'utf8');
    const peakRss = round(Number(/^VmHWM:\s+(\d+)/m.exec(status)![1]) / 1024);
    return {
      file_mib: round(size / 1048576),
      disk_copy: diskCopy,
      receiver_upload: { ...upload, peak_rss_mib: peakRss },
      upload_over_copy_wall: round(upload.wall_s / diskCopy.wall_s),
    };
  } finally {
    child.kill('SIGTERM');
    await exited;
    await fs.rm(storage, { recursive: true, force: true });
  }
}
