import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeStoredZip } from '../../src/bench/stored-zip.js';
import { uploadArchive } from '../../src/receiver/client.js';
import { HAVE_MARIADB, MYSQL_HOST, MYSQL_PORT, freshMysqlDatabase, type FreshDatabase } from '../support/databases.js';
import {
  archiveName,
  dropUploadMidway,
  listTree,
  requestJson,
  startReceiverProcess,
  tempFiles,
  waitFor,
  writeDumpZip,
  type ReceiverProcess,
} from '../support/receiver.js';
import { CLI, ok, runCommand, tempDir } from '../support/tools.js';

const GiB = 1024 ** 3;

/** Peak resident memory of a process, from /proc (VmHWM), in MiB. */
async function peakRssMiB(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) / 1024;
}

describe('cairn receiver (the real process)', () => {
  let dir: string;
  const processes: ReceiverProcess[] = [];

  beforeAll(async () => {
    dir = await tempDir('cairn-receiver-e2e-');
  });

  afterAll(async () => {
    for (const p of processes) if (p.child.exitCode === null) await p.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('stores a 1 GiB upload with its peak RSS under 150 MiB', async () => {
    const storage = path.join(dir, 'big-store');
    const name = archiveName('big_db');
    const zip = path.join(dir, name);
    const written = await writeStoredZip(zip, name.replace(/\.zip$/, ''), GiB);
    const receiver = await startReceiverProcess(['--storage', storage, '--log-level', 'warn']);
    processes.push(receiver);
    const startedAt = Date.now();
    const stored = await uploadArchive(receiver.url, 'big_db', zip);
    const seconds = (Date.now() - startedAt) / 1000;
    const peak = await peakRssMiB(receiver.child.pid!);
    console.log(`1 GiB upload: ${seconds.toFixed(1)} s, ${(written.size / 1048576 / seconds).toFixed(0)} MiB/s, receiver peak RSS ${peak.toFixed(1)} MiB`);
    expect(stored).toMatchObject({ database_name: 'big_db', file_name: name, size: written.size, sha256: written.sha256 });
    expect((await fs.stat(path.join(storage, name))).size).toBe(written.size);
    expect(peak).toBeLessThan(150);
    expect(await receiver.stop()).toBe(0);
    await fs.rm(zip);
    await fs.rm(storage, { recursive: true });
  }, 120_000);

  it('cleans up a dropped upload, finishes an upload in flight on SIGTERM, then exits 0', async () => {
    const parent = path.join(dir, 'graceful');
    const storage = path.join(parent, 'store');
    const files = path.join(dir, 'graceful-files');
    await fs.mkdir(files, { recursive: true });
    const receiver = await startReceiverProcess(['--storage', storage]);
    processes.push(receiver);

    await dropUploadMidway(receiver.url, '/shop', archiveName('shop'), storage, 200_000, 2_000_000);
    await waitFor(async () => (await tempFiles(storage)).length === 0, 'the temporary file to be removed');
    expect((await requestJson(`${receiver.url}/`)).body).toEqual({ data: [], message: 'success' });

    // Half an upload, then SIGTERM, then the other half: the upload is stored and answered.
    const archive = await writeDumpZip(files, 'shop', { sql: randomBytes(400_000) });
    const bytes = await fs.readFile(archive.path);
    const boundary = 'cairn-graceful';
    const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${archive.fileName}"\r\n\r\n`);
    const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    const { port } = new URL(receiver.url);
    const socket = net.connect({ host: '127.0.0.1', port: Number(port) });
    const answer = new Promise<string>((resolve, reject) => {
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    socket.write(`POST /shop HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${head.length + bytes.length + tail.length}\r\n\r\n`);
    socket.write(Buffer.concat([head, bytes.subarray(0, 200_000)]));
    await waitFor(async () => (await tempFiles(storage)).length > 0, 'the upload to begin');
    const stopped = receiver.stop();
    await waitFor(async () => receiver.stderr().includes('shutting down'), 'the receiver to begin its shutdown');
    // write, not end: a half-closed request is an aborted one to Node's HTTP server.
    socket.write(Buffer.concat([bytes.subarray(200_000), tail]));
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { data: { file_name: string; sha256: string } };
    expect(body.data).toMatchObject({ file_name: archive.fileName, sha256: archive.sha256 });
    expect(await stopped).toBe(0);
    expect(receiver.stderr()).toContain('receiver stopped');
    expect(await listTree(parent)).toEqual(['store/', `store/${archive.fileName}`, 'store/receiver.db']);
  });

  it('takes the catalog from CAIRN_CATALOG_URL and refuses flags that make no sense', async () => {
    const catalog = path.join(dir, 'env-catalog', 'history.db');
    const receiver = await startReceiverProcess(['--storage', path.join(dir, 'env-store')], { CAIRN_CATALOG_URL: `sqlite:${catalog}` });
    processes.push(receiver);
    expect(await receiver.stop()).toBe(0);
    expect(receiver.stderr()).toContain(`"catalog":"sqlite:${catalog}"`);
    await fs.access(catalog);

    const cases: [string[], string][] = [
      [['--max-size', 'lots'], 'invalid --max-size "lots": use bytes or a number with K, M, G or T (e.g. 2G)'],
      [['--keep', '0'], 'invalid --keep "0": use a whole number from 1'],
      [['--port', 'http'], 'invalid --port "http": use a whole number from 0'],
      [['--token-file', path.join(dir, 'no-such-token')], `cannot read token file ${path.join(dir, 'no-such-token')}: ENOENT`],
      [['--catalog', 'redis://x'], 'unsupported catalog URL redis://x: use sqlite:PATH, mysql://… or postgres://…'],
    ];
    for (const [args, message] of cases) {
      const r = await runCommand(process.execPath, [CLI, 'receiver', '--storage', path.join(dir, 'refused'), ...args]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: `Fatal: ${message}\n` });
    }
  });

  describe.runIf(HAVE_MARIADB)('with a MariaDB catalog', () => {
    let db: FreshDatabase;
    const user = `cairn_rcv_${randomBytes(4).toString('hex')}`;
    const password = `pw-${randomBytes(8).toString('hex')}`;

    beforeAll(async () => {
      db = await freshMysqlDatabase('cairn_rcv');
      const sql = `CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'; GRANT ALL ON \`${db.name}\`.* TO '${user}'@'%';`;
      ok(await runCommand('mariadb', ['-h', MYSQL_HOST, '-P', String(MYSQL_PORT), '-u', 'root', '-e', sql]), 'create user');
    });

    afterAll(async () => {
      await runCommand('mariadb', ['-h', MYSQL_HOST, '-P', String(MYSQL_PORT), '-u', 'root', '-e', `DROP USER IF EXISTS '${user}'@'%'`]);
      await db?.drop();
    });

    it('keeps history in MariaDB with the password read from a file, a token and --keep, and no secret in argv or logs', async () => {
      const storage = path.join(dir, 'maria-store');
      const files = path.join(dir, 'maria-files');
      await fs.mkdir(files, { recursive: true });
      const catalogFile = path.join(dir, 'catalog-url');
      await fs.writeFile(catalogFile, `mysql://${user}:${password}@${MYSQL_HOST}:${MYSQL_PORT}/${db.name}\n`, { mode: 0o600 });
      const tokenFile = path.join(dir, 'token');
      const token = randomBytes(16).toString('hex');
      await fs.writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
      const receiver = await startReceiverProcess(['--storage', storage, '--catalog-file', catalogFile, '--token-file', tokenFile, '--keep', '1', '--max-size', '10M']);
      processes.push(receiver);

      const first = await writeDumpZip(files, 'pt_xyz');
      const second = await writeDumpZip(files, 'pt_xyz', { engine: 'postgres' });
      await uploadArchive(receiver.url, 'pt_xyz', first.path, { token });
      const kept = await uploadArchive(receiver.url, 'pt_xyz', second.path, { token });
      const history = await requestJson(`${receiver.url}/pt_xyz`, { headers: { authorization: `Bearer ${token}` } });
      expect(history.body).toEqual({ data: { database_name: 'pt_xyz', histories: [{ id: kept.id, file_name: second.fileName, timestamp: kept.timestamp }] }, message: 'success' });
      expect((await fs.readdir(storage)).sort()).toEqual([second.fileName]);
      const rows = ok(await runCommand('mariadb', ['-h', MYSQL_HOST, '-P', String(MYSQL_PORT), '-u', 'root', '-N', '-e', `SELECT file_name, sha256, size FROM \`${db.name}\`.receiver_backups`]), 'select');
      expect(rows.out.trim()).toBe(`${second.fileName}\t${second.sha256}\t${second.size}`);

      const argv = await fs.readFile(`/proc/${receiver.child.pid}/cmdline`, 'utf8');
      expect(argv).not.toContain(password);
      expect(argv).not.toContain(token);
      expect(await receiver.stop()).toBe(0);
      expect(receiver.stderr()).toContain(`mysql://${user}:***@`);
      expect(receiver.stderr()).not.toContain(password);
      expect(receiver.stderr()).not.toContain(token);
    });
  });
});
