import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, runCommand, tempDir } from '../support/tools.js';
import { archiveName } from '../support/zips.js';

interface Proc {
  child: ChildProcess;
  url: string;
  stderr: () => string;
}

async function startProcess(args: string[]): Promise<Proc> {
  const child = spawn(process.execPath, [CLI, 'receiver', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    readline.createInterface({ input: child.stdout! }).once('line', (line) => resolve(/listening on (\S+)/.exec(line)?.[1] ?? ''));
    child.once('exit', (code) => reject(new Error(`receiver exited ${code}: ${err}`)));
  });
  return { child, url, stderr: () => err };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => (child.exitCode !== null ? resolve(child.exitCode) : child.once('exit', (code) => resolve(code))));
}

function peakRssMiB(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

const procs: ChildProcess[] = [];
afterAll(() => {
  for (const c of procs) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('cairn receiver (the real process)', () => {
  it('takes a 1 GiB upload with flat memory, stores it intact, and stops cleanly on SIGTERM', async () => {
    const base = await tempDir('cairn-receiver-e2e-');
    const tokenFile = path.join(base, 'token');
    await fsp.writeFile(tokenFile, 'e2e-token\n', { mode: 0o600 });
    // A stored (uncompressed) 1 GiB entry: zip reads a sparse file quickly, and the archive is 1 GiB on disk.
    const sql = path.join(base, 'dump.sql');
    await fsp.writeFile(sql, 'CREATE TABLE t (x int);\n');
    await fsp.truncate(sql, 1024 ** 3);
    const name = archiveName('big_db');
    const zipPath = path.join(base, name);
    const z = await runCommand('zip', ['-0', '-q', '-j', zipPath, sql]);
    expect(z.code).toBe(0);
    await fsp.rm(sql);
    const size = (await fsp.stat(zipPath)).size;
    expect(size).toBeGreaterThan(1024 ** 3);

    const p = await startProcess(['--storage', path.join(base, 'store'), '--token-file', tokenFile, '--max-size', '2G']);
    procs.push(p.child);
    const baseline = peakRssMiB(p.child.pid!);
    const form = new FormData();
    form.append('file', await fs.openAsBlob(zipPath), name);
    const res = await fetch(`${p.url}/big_db`, { method: 'POST', body: form, headers: { authorization: 'Bearer e2e-token' } });
    const body = (await res.json()) as { data: { size: number; sha256: string; file_name: string } };
    expect(res.status).toBe(200);
    const peak = peakRssMiB(p.child.pid!);
    console.log(`receiver peak RSS: ${peak.toFixed(0)} MiB after a ${(size / 1048576).toFixed(0)} MiB upload (at start: ${baseline.toFixed(0)} MiB)`);
    expect(peak).toBeLessThan(150);

    const hash = createHash('sha256');
    for await (const chunk of fs.createReadStream(zipPath)) hash.update(chunk as Buffer);
    expect(body.data).toMatchObject({ file_name: name, size, sha256: hash.digest('hex') });
    expect((await fsp.stat(path.join(base, 'store', name))).size).toBe(size);
    const t = await runCommand('unzip', ['-tq', path.join(base, 'store', name)]);
    expect(t.out).toMatch(/No errors detected/);
    expect(p.stderr()).not.toContain('e2e-token');

    p.child.kill('SIGTERM');
    expect(await exited(p.child)).toBe(0);
  });

  it('refuses bad options with a clear message and exit code 1', async () => {
    const base = await tempDir('cairn-receiver-e2e-');
    const r1 = await runCommand(process.execPath, [CLI, 'receiver', '--storage', base, '--port', 'eighty']);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/invalid --port "eighty"/);
    const r2 = await runCommand(process.execPath, [CLI, 'receiver', '--storage', base, '--token-file', path.join(base, 'missing')]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/cannot read token file .*missing: ENOENT/);
    const r3 = await runCommand(process.execPath, [CLI, 'receiver', '--storage', base, '--catalog', 'mysql://root:hunter2@127.0.0.1:1/x', '--port', '0']);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(/cannot reach catalog mysql:\/\/root:\*\*\*@127\.0\.0\.1:1\/x/);
    expect(r3.stderr).not.toContain('hunter2');
    const r4 = await runCommand(process.execPath, [CLI, 'receiver', '--storage', base, '--max-size', 'lots']);
    expect(r4.code).toBe(1);
    expect(r4.stderr).toMatch(/invalid --max-size "lots"/);
  });
});
