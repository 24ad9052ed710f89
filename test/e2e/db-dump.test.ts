import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_MARIADB, HAVE_POSTGRES, MYSQL_HOST, MYSQL_PORT, PG_HOST, PG_PORT, freshMysqlDatabase, freshPostgresDatabase, type FreshDatabase } from '../support/databases.js';
import { mysqlConnection, pgClient } from '../support/db-fixtures.js';
import { startStandInReceiver } from '../support/receiver-stand-in.js';
import { startReceiver, type RunningReceiver } from '../../src/receiver/server.js';
import { CLI, runCommand, tempDir } from '../support/tools.js';

const run = promisify(execFile);

interface DumpSummary {
  databases: { database: string; status: string; error?: string; failed_stage?: string; archive: string; upload_attempts: number; receiver?: { id: string; file_name: string } }[];
  succeeded: number;
  failed: number;
}

/** Runs `cairn db-dump`, and meanwhile reads every process's argv and environment again and again. */
async function dbDumpWatched(args: string[], env: NodeJS.ProcessEnv, secrets: string[]): Promise<{ code: number; out: string; stderr: string; polls: number; sawDumpTool: boolean; leaks: string[] }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  let running = true;
  void exited.then(() => (running = false));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const leaks: string[] = [];
  let polls = 0;
  let sawDumpTool = false;
  while (running) {
    // Every other poll runs ps itself; in between, /proc is read directly (cmdline of every process,
    // environ of the ones this run started), which is quick enough to catch short-lived dump tools.
    const texts: string[] = [];
    if (polls % 2 === 0) texts.push((await run('ps', ['-eo', 'args'], { maxBuffer: 16 * 1024 * 1024 })).stdout);
    const pids = (await fs.readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p) && Number(p) >= (child.pid ?? 0));
    for (const pid of pids) {
      const cmdline = await fs.readFile(`/proc/${pid}/cmdline`, 'latin1').catch(() => '');
      texts.push(cmdline);
      if (/mariadb-dump|mysqldump|pg_dump/.test(cmdline)) sawDumpTool = true;
      texts.push(await fs.readFile(`/proc/${pid}/environ`, 'latin1').catch(() => ''));
    }
    if (texts.some((t) => /mariadb-dump|mysqldump|pg_dump/.test(t))) sawDumpTool = true;
    for (const t of texts) for (const s of secrets) if (t.includes(s)) leaks.push(s);
    polls++;
  }
  clearTimeout(timer);
  return { code: await exited, out, stderr, polls, sawDumpTool, leaks };
}

describe.skipIf(!HAVE_MARIADB || !HAVE_POSTGRES)('db-dump: dump → zip → upload', () => {
  const good = `Ok_${randomBytes(8).toString('hex')}`;
  const bad = `Bad_${randomBytes(8).toString('hex')}`;
  const user = `cairn_u_${randomBytes(4).toString('hex')}`;
  const dbs: FreshDatabase[] = [];
  let pgDb: FreshDatabase;
  let receiver: RunningReceiver;
  /** The real receiver the archives go to, with bearer token `TOKEN`; tests talk to it only through its routes. */
  let receiverUrl: string;
  const TOKEN = 'tok123';
  let work: string;

  beforeAll(async () => {
    work = await tempDir('cairn-db-dump-test-');
    for (let i = 0; i < 4; i++) dbs.push(await freshMysqlDatabase('cairn_dd'));
    pgDb = await freshPostgresDatabase('cairn_dd');
    const c = await mysqlConnection('mysql');
    try {
      for (const host of ['%', 'localhost']) {
        await c.query(`CREATE USER '${user}'@'${host}' IDENTIFIED BY '${good}'`);
        for (const db of dbs) await c.query(`GRANT ALL ON \`${db.name}\`.* TO '${user}'@'${host}'`);
      }
      for (const db of dbs) {
        await c.query(`CREATE TABLE \`${db.name}\`.rows_t (id INT PRIMARY KEY, v VARCHAR(80))`);
        await c.query(`INSERT INTO \`${db.name}\`.rows_t SELECT seq, CONCAT('row ', seq, ' ✓') FROM seq_1_to_150000`);
      }
    } finally {
      await c.end();
    }
    const p = await pgClient(pgDb.name);
    try {
      await p.query("CREATE TABLE rows_t (id int PRIMARY KEY, v text); INSERT INTO rows_t SELECT g, 'row ' || g FROM generate_series(1, 150000) g");
    } finally {
      await p.end();
    }
    receiver = await startReceiver({ storage: path.join(work, 'received'), port: 0, token: TOKEN });
    receiverUrl = receiver.url;
  }, 90_000);

  afterAll(async () => {
    await receiver?.close();
    const c = await mysqlConnection('mysql');
    try {
      for (const host of ['%', 'localhost']) await c.query(`DROP USER IF EXISTS '${user}'@'${host}'`);
    } finally {
      await c.end();
    }
    for (const db of [...dbs, pgDb]) await db?.drop();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('uploads four of five databases, reports the one with a wrong password, exits non-zero, and never shows a password to ps', { timeout: 90_000 }, async () => {
    const entry = (db: FreshDatabase, password: string) => ({ database_name: db.name, db_host: MYSQL_HOST, db_port: String(MYSQL_PORT), db_username: user, db_password: password });
    const config = [
      entry(dbs[0], good),
      entry(dbs[1], good),
      entry(dbs[2], bad),
      entry(dbs[3], good),
      { database_name: pgDb.name, db_host: PG_HOST, db_port: String(PG_PORT), db_username: 'postgres', db_password: good, engine: 'postgres' },
    ];
    const configFile = path.join(work, 'databases.json');
    await fs.writeFile(configFile, JSON.stringify(config), { mode: 0o600 });
    const tokenFile = path.join(work, 'token');
    await fs.writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const tmp = path.join(work, 'tmp');
    await fs.mkdir(tmp);

    const r = await dbDumpWatched(['--json', 'db-dump', '--config', configFile, '--upload', receiverUrl, '--concurrency', '3', '--token-file', tokenFile], { TMPDIR: tmp }, [good, bad, configFile]);

    expect(r.code, r.stderr).toBe(1);
    // The config file's name is in cairn's argv: finding it shows the watch saw the run.
    expect(new Set(r.leaks)).toEqual(new Set([configFile]));
    expect(r.polls).toBeGreaterThan(3);
    expect(r.sawDumpTool).toBe(true);
    expect(r.stderr).toContain(`1 of 5 databases failed: ${dbs[2].name}`);
    expect(r.stderr).toMatch(new RegExp(`\\[${dbs[0].name}\\] upload done`));
    const summary = JSON.parse(r.out) as DumpSummary;
    expect([summary.succeeded, summary.failed]).toEqual([4, 1]);
    const failed = summary.databases.find((d) => d.status === 'failed')!;
    expect(failed.database).toBe(dbs[2].name);
    expect(failed.failed_stage).toBe('dump');
    expect(failed.error).toMatch(/Access denied/);
    expect(`${r.out}${r.stderr}`).not.toContain(bad);

    const uploaded = summary.databases.filter((d) => d.status === 'uploaded');
    expect(uploaded.map((d) => d.database).sort()).toEqual([dbs[0].name, dbs[1].name, dbs[3].name, pgDb.name].sort());
    const listed = (await (await fetch(receiverUrl, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { data: { database_name: string; latest_backup: { file_name: string } }[] };
    expect(listed.data.map((d) => [d.database_name, d.latest_backup.file_name]).sort()).toEqual(uploaded.map((d) => [d.database, d.archive]).sort());
    for (const d of uploaded) {
      expect(d.archive).toMatch(new RegExp(`^(mysql|postgres)-\\d{4}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-\\d{2}-${d.database}-[0-9a-f-]{36}\\.sql\\.zip$`));
      expect(d.receiver?.file_name).toBe(d.archive);
      const zip = path.join(work, d.archive);
      await fs.writeFile(zip, Buffer.from(await (await fetch(`${receiverUrl}/${d.receiver!.id}/download`, { headers: { authorization: `Bearer ${TOKEN}` } })).arrayBuffer()));
      const test = await runCommand('unzip', ['-t', zip]);
      expect(test.code, test.out).toBe(0);
      expect((await runCommand('unzip', ['-p', zip, d.archive.replace(/\.zip$/, '')])).out).toContain('row 149999');
    }
    expect(await fs.readdir(tmp)).toEqual([]);
  });

  it('retries an upload answered 503, does not retry a 4xx, and keeps the archive in --out', async () => {
    const flaky = await startStandInReceiver(path.join(work, 'flaky'), { failFirst: [pgDb.name] });
    const refusing = await startStandInReceiver(path.join(work, 'refused'), { answer: 409 });
    try {
      const configFile = path.join(work, 'one.json');
      await fs.writeFile(configFile, JSON.stringify([{ database_name: pgDb.name, db_host: PG_HOST, db_port: PG_PORT, db_username: 'postgres', db_password: '', engine: 'postgres' }]));
      const retried = await runCommand(process.execPath, [CLI, '--json', 'db-dump', '--config', configFile, '--upload', flaky.url]);
      expect(retried.code, retried.stderr).toBe(0);
      expect(retried.stderr).toContain('upload: attempt 1 failed (HTTP 503: try again later); retrying');
      expect((JSON.parse(retried.out) as DumpSummary).databases[0].upload_attempts).toBe(2);
      expect(flaky.log).toEqual([`503 ${pgDb.name}`, `200 ${pgDb.name}`]);

      const out = path.join(work, 'out');
      const r = await runCommand(process.execPath, [CLI, '--json', 'db-dump', '--config', configFile, '--upload', refusing.url, '--out', out]);
      expect(r.code).toBe(1);
      const summary = JSON.parse(r.out) as DumpSummary;
      expect(summary.databases[0].failed_stage).toBe('upload');
      expect(summary.databases[0].error).toContain('HTTP 409: told to refuse');
      expect(refusing.log).toEqual([`409 ${pgDb.name}`]);
      expect(await fs.readdir(out)).toEqual([summary.databases[0].archive]);
    } finally {
      await flaky.close();
      await refusing.close();
    }
  });

  it('names every problem of a bad config and dumps nothing', async () => {
    const configFile = path.join(work, 'bad.json');
    await fs.writeFile(configFile, JSON.stringify([{ database_name: '../x', db_host: '', db_port: 'abc' }]));
    const r = await runCommand(process.execPath, [CLI, 'db-dump', '--config', configFile, '--out', path.join(work, 'never')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('entry 1 (../x): database_name: must be 1-64 letters, digits or underscores');
    expect(r.stderr).toContain('db_host: must not be empty');
    expect(r.stderr).toContain('db_port: must be a port number');
    expect(r.stderr).toContain('db_username');
    await fs.writeFile(configFile, '[{"database_name": ');
    expect((await runCommand(process.execPath, [CLI, 'db-dump', '--config', configFile, '--out', path.join(work, 'never')])).stderr).toContain('is not valid JSON');
  });
});
