/**
 * Database plans in the daemon (in this process, against the machine's MariaDB): each database is a
 * task whose dump becomes a snapshot restic reads, followed by a restore drill; bad database sources
 * are refused when the plan is added.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { Daemon } from './daemon.js';
import type { JobRecord } from './catalog.js';
import { HAVE_RESTIC, ok, runCommand, tempDir } from '../../test/support/tools.js';
import { waitFor } from '../../test/support/daemon.js';
import { HAVE_MARIADB, freshMysqlDatabase, type FreshDatabase } from '../../test/support/databases.js';
import { mysqlConnection } from '../../test/support/db-fixtures.js';

process.env.CAIRN_KDF_N = '1024';

describe.runIf(HAVE_MARIADB && HAVE_RESTIC)('database plans', () => {
  let d: Daemon;
  let db: FreshDatabase;
  let base: string;

  const api = async <T = Record<string, unknown>>(method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${d.url}${route}`, { method, headers: { authorization: `Bearer ${d.token}`, ...(body !== undefined && { 'content-type': 'application/json' }) }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as T };
  };

  beforeAll(async () => {
    base = await tempDir();
    db = await freshMysqlDatabase('cairn_plan');
    const c = await mysqlConnection(db.name);
    try {
      await c.query('CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))');
      await c.query("INSERT INTO t SELECT seq, CONCAT('row ', seq) FROM seq_1_to_2500");
      await c.query('CREATE TABLE u (id INT PRIMARY KEY)');
      await c.query('INSERT INTO u VALUES (1), (2), (3)');
    } finally {
      await c.end();
    }
    await fs.writeFile(path.join(base, 'cairn.json'), JSON.stringify({ retryBaseMs: 50 }));
    d = await Daemon.start({ configFile: path.join(base, 'cairn.json'), dataDir: path.join(base, 'data'), listen: '127.0.0.1:0', logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await d?.stop();
    await db?.drop();
  });

  it('backs up each database as its own task and snapshot, runs the restore drill, and restic reads the dump', async () => {
    const plan = { name: 'shop-db', sources: [{ kind: 'database', url: `mysql://root@127.0.0.1:3306/${db.name}`, verify: true }], schedule: '0 3 * * *' };
    expect((await api('POST', '/api/v1/plans', plan)).status).toBe(201);
    const job = await d.runPlan('shop-db');
    const done = await waitFor('the database job', async () => {
      const j = await d.catalog.getJob(job.id);
      return j && ['done', 'failed'].includes(j.state) ? j : null;
    }, 60_000);
    expect(done.state, JSON.stringify(done)).toBe('done');
    expect(done.tasks).toHaveLength(1);
    const task = done.tasks[0] as JobRecord['tasks'][number] & { result: { snapshot: string; path: string; verified: { tables: number; rows: number } } };
    expect(task.name).toBe(`mysql:${db.name}`);
    expect(task.result.path).toBe(`/mysql/${db.name}.sql`);
    expect(task.result.verified).toEqual({ tables: 2, rows: 2503 });

    const env = { RESTIC_REPOSITORY: d.repository.location, RESTIC_PASSWORD_FILE: d.repository.passwordFile, RESTIC_CACHE_DIR: path.join(base, 'restic-cache') };
    const dump = ok(await runCommand('restic', ['dump', 'latest', `/mysql/${db.name}.sql`], { env }), 'restic dump');
    expect(dump.out).toContain('CREATE TABLE `t`');
    expect(dump.out).toContain("(2500,'row 2500')");
    ok(await runCommand('restic', ['check'], { env }), 'restic check');
  });

  it('refuses database sources that cannot work, saying why', async () => {
    const add = (p: unknown) => api<{ error: { code: string; message: string } }>('POST', '/api/v1/plans', p);
    const cases: [unknown, RegExp][] = [
      [{ name: 'x1', sources: [{ kind: 'database', url: 'mysql://root:secret@127.0.0.1/x' }] }, /keep the password out of the URL/],
      [{ name: 'x2', sources: [{ kind: 'database', url: 'mysql://root@127.0.0.1/x' }], watch: true }, /cannot be watched/],
      [{ name: 'x3', sources: [{ kind: 'database', url: 'mysql://root@127.0.0.1/x' }, { path: base }] }, /plan of their own/],
      [{ name: 'x4', sources: [{ kind: 'database', url: 'oracle://h/x' }] }, /database|URL|url/i],
      [{ name: 'x5', sources: [{ kind: 'database', url: 'mysql://root@127.0.0.1/x' }], target: `archive:${base}` }, /repository targets/],
    ];
    for (const [plan, message] of cases) {
      const r = await add(plan);
      expect(r.status, JSON.stringify(plan)).toBe(400);
      expect(r.body.error.message).toMatch(message);
      expect(JSON.stringify(r.body)).not.toContain('secret');
    }
  });
});
