/**
 * `npm run bench -- db-dump` (or `node dist/bench/db-dump.js`): `cairn db-dump` of five MariaDB
 * databases with all five in flight (`--concurrency 5`) beside one after another (`--concurrency
 * 1`), uploading to a local sink that reads and discards the body. Prints one JSON document.
 * Needs MariaDB on 127.0.0.1:3306 as root without a password; CAIRN_BENCH_DB_ROWS sets the rows per database.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CAIRN_ENV, cairnArgv } from './cli.js';

const DATABASES = 5;
const ROWS = Number(process.env.CAIRN_BENCH_DB_ROWS ?? 300_000);

function mariadb(sql: string): void {
  const r = spawnSync('mariadb', ['-h', '127.0.0.1', '-P', '3306', '-u', 'root', '-e', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mariadb: ${r.stderr}`);
}

/** An upload target that reads every byte and answers like a receiver. */
async function sink(): Promise<{ url: string; bytes: () => number; close: () => Promise<void> }> {
  let bytes = 0;
  const server = http.createServer((req, res) => {
    req.on('data', (d: Buffer) => (bytes += d.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"message":"success"}'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, bytes: () => bytes, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

async function timed(args: string[]): Promise<{ wall_s: number; summary: { databases: { dump_bytes: number; zip_bytes: number; status: string }[] } }> {
  const start = process.hrtime.bigint();
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, cairnArgv('--json', ...args), { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, ...CAIRN_ENV } });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(text) : reject(new Error(`cairn ${args.join(' ')} exited ${code}`))));
  });
  return { wall_s: Math.round(Number(process.hrtime.bigint() - start) / 1e7) / 100, summary: JSON.parse(out) };
}

export async function benchDbDump(): Promise<Record<string, unknown>> {
  const tag = randomBytes(4).toString('hex');
  const names = Array.from({ length: DATABASES }, (_, i) => `cairn_bench_${tag}_${i}`);
  const work = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-bench-db-'));
  const target = await sink();
  try {
    for (const n of names) {
      mariadb(`CREATE DATABASE ${n}; CREATE TABLE ${n}.orders (id INT PRIMARY KEY, customer VARCHAR(40), note TEXT, amount DECIMAL(12,2), payload VARBINARY(32));
        INSERT INTO ${n}.orders SELECT seq, CONCAT('customer ', seq % 997), REPEAT(CONCAT('note ', seq, ' '), 1 + seq % 4), seq / 7, UNHEX(SHA2(seq, 256)) FROM ${n}.seq_1_to_${ROWS};`);
    }
    const config = path.join(work, 'databases.json');
    await fs.writeFile(config, JSON.stringify(names.map((n) => ({ database_name: n, db_host: '127.0.0.1', db_port: '3306', db_username: 'root', db_password: '' }))), { mode: 0o600 });
    // A warm-up run so both measured runs read a warm buffer pool.
    await timed(['db-dump', '--config', config, '--upload', target.url, '--concurrency', String(DATABASES)]);
    const concurrent = await timed(['db-dump', '--config', config, '--upload', target.url, '--concurrency', String(DATABASES)]);
    const sequential = await timed(['db-dump', '--config', config, '--upload', target.url, '--concurrency', '1']);
    const dbs = concurrent.summary.databases;
    return {
      databases: DATABASES,
      rows_each: ROWS,
      dump_mib_each: Math.round(dbs[0].dump_bytes / 10485.76) / 100,
      zip_mib_each: Math.round(dbs[0].zip_bytes / 10485.76) / 100,
      cores: os.availableParallelism(),
      concurrent_wall_s: concurrent.wall_s,
      sequential_wall_s: sequential.wall_s,
      concurrent_over_sequential: Math.round((concurrent.wall_s / sequential.wall_s) * 100) / 100,
    };
  } finally {
    await target.close();
    for (const n of names) mariadb(`DROP DATABASE IF EXISTS ${n}`);
    await fs.rm(work, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.stdout.write(`${JSON.stringify(await benchDbDump(), null, 2)}\n`);
