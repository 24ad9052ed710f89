import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_MARIADB, HAVE_POSTGRES, MYSQL_HOST, MYSQL_PORT, PG_HOST, PG_PORT, freshMysqlDatabase, freshPostgresDatabase } from '../support/databases.js';
import { FIXTURE_ROWS, fillMysql, fillPostgres, fillSqlite, fingerprintMysql, fingerprintPostgres, fingerprintSqlite, mysqlConnection, pgClient, type DbFingerprint } from '../support/db-fixtures.js';
import { CLI, HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, tempDir, type TestRepo } from '../support/tools.js';

/** One database to put through backup, drop, restore and a drill. */
interface Subject {
  /** The --db URL. */
  url: string;
  /** Where the dump lands in the snapshot. */
  path: string;
  fingerprint(): Promise<DbFingerprint>;
  /** Removes the database (the restore must create it again). */
  drop(): Promise<void>;
  /** --scratch for db-verify (none for SQLite). */
  scratch?: string;
  /** Whether a database of this name exists (to see that the drill dropped its scratch database). */
  exists(name: string): Promise<boolean>;
  /** A --db URL whose dump fails, and a word the error must contain. */
  failing: { url: string; expect: RegExp };
  /** The stored functions and procedures the fixture made (SQLite has none). */
  routines: string[];
  /** The share of a second, unchanged dump that may be new data (default 1%). */
  maxNewShare?: number;
}

interface Summary {
  snapshot_id: string;
  path: string;
  data_added: number;
  total_bytes_processed: number;
}

function summaries(out: string): Summary[] {
  return out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Summary & { message_type: string })
    .filter((m) => m.message_type === 'summary');
}

const SECRET = 'Pw_never_in_ps_4711';

/** `conflict`: for engines whose dumps need an empty target, what loading into a full one says. */
function roundTrip(label: string, available: boolean, make: () => Promise<Subject & { cleanup(): Promise<void> }>, conflict?: RegExp): void {
  describe.skipIf(!available)(`backup --db and db-restore: ${label}`, () => {
    let repo: TestRepo;
    let s: Subject & { cleanup(): Promise<void> };
    let first: Summary;

    beforeAll(async () => {
      repo = await makeRepoPaths();
      ok(await cairn(repo, ['init']), 'init');
      s = await make();
    }, 90_000);
    afterAll(async () => {
      await s?.cleanup();
      if (repo) await fs.rm(path.dirname(repo.dir), { recursive: true, force: true });
    });

    it('backs up one file tagged db, and after a drop restores equal rows, checksums, view, trigger and routine', async () => {
      const before = await s.fingerprint();
      expect(before.tables.events.rows).toBe(FIXTURE_ROWS);
      expect(before.tables.audit.rows).toBe(4);
      expect(before.views).toEqual(['customer_events']);
      expect(before.triggers).toEqual(['customers_ai']);
      expect(before.routines).toEqual(s.routines);

      [first] = summaries(ok(await cairn(repo, ['--json', 'backup', '--db', s.url, '--tag', 'nightly']), 'backup --db').out);
      expect(first.path).toBe(s.path);
      const snaps = JSON.parse(ok(await cairn(repo, ['snapshots', '--json', '--path', s.path]), 'snapshots').out) as { id: string; tags: string[]; paths: string[] }[];
      expect(snaps.map((x) => [x.id, x.tags, x.paths])).toEqual([[first.snapshot_id, ['db', 'nightly'], [s.path]]]);

      await s.drop();
      ok(await cairn(repo, ['db-restore', 'latest', '--path', s.path, '--to', s.url]), 'db-restore');
      expect(await s.fingerprint()).toEqual(before);
    });

    it.skipIf(!HAVE_RESTIC)('writes a repository restic checks, and restic dump gives the same bytes as cairn dump', async () => {
      ok(await restic(repo, ['check']), 'restic check');
      const theirs = ok(await restic(repo, ['dump', first.snapshot_id, s.path]), 'restic dump').stdout;
      const ours = ok(await cairn(repo, ['dump', first.snapshot_id, s.path]), 'cairn dump').stdout;
      expect(ours.length).toBe(first.total_bytes_processed);
      expect(theirs.equals(ours)).toBe(true);
    });

    it('adds almost nothing when the unchanged database is backed up again', async () => {
      const [again] = summaries(ok(await cairn(repo, ['--json', 'backup', '--db', s.url]), 'second backup').out);
      expect(again.total_bytes_processed).toBeGreaterThan(1_000_000);
      expect(again.data_added).toBeLessThan(again.total_bytes_processed * (s.maxNewShare ?? 0.01));
    });

    it('db-verify loads the latest dump into a scratch database, counts tables and rows, and drops it', async () => {
      const args = ['--json', 'db-verify', '--path', s.path, ...(s.scratch ? ['--scratch', s.scratch] : [])];
      const { drills } = JSON.parse(ok(await cairn(repo, args), 'db-verify').out) as { drills: { tables: number; rows: number; scratch_database: string; per_table: { table: string; rows: number }[] }[] };
      expect(drills).toHaveLength(1);
      expect(drills[0].tables).toBe(3);
      expect(drills[0].per_table).toEqual([
        { table: 'audit', rows: 4 },
        { table: 'customers', rows: 4 },
        { table: 'events', rows: FIXTURE_ROWS },
      ]);
      expect(drills[0].rows).toBe(FIXTURE_ROWS + 8);
      expect(await s.exists(drills[0].scratch_database)).toBe(false);
    });

    if (conflict) {
      it('fails a load into a database that already holds the tables, with the loader error, and changes nothing', async () => {
        const r = await cairn(repo, ['db-restore', first.snapshot_id, '--to', s.url]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(conflict);
        expect(await s.fingerprint()).toMatchObject({ tables: { events: { rows: FIXTURE_ROWS }, audit: { rows: 4 } } });
      });
    }

    it('fails a backup whose dump fails, with the tool error and no snapshot', async () => {
      const count = (JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as unknown[]).length;
      const r = await cairn(repo, ['backup', '--db', s.failing.url]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(s.failing.expect);
      expect(r.stderr).not.toContain(SECRET);
      expect(JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out)).toHaveLength(count);
    });
  });
}

roundTrip('MariaDB', HAVE_MARIADB, async () => {
  const db = await freshMysqlDatabase();
  await fillMysql(db.name);
  const server = `mysql://root@${MYSQL_HOST}:${MYSQL_PORT}`;
  return {
    url: db.url,
    path: `/mysql/${db.name}.sql`,
    routines: ['double_it'],
    fingerprint: () => fingerprintMysql(db.name),
    drop: () => db.drop(),
    cleanup: () => db.drop(),
    scratch: server,
    exists: async (name) => {
      const c = await mysqlConnection('mysql');
      try {
        const [rows] = await c.query<import('mysql2').RowDataPacket[]>('SELECT schema_name FROM information_schema.schemata WHERE schema_name = ?', [name]);
        return rows.length > 0;
      } finally {
        await c.end();
      }
    },
    failing: { url: `mysql://root:${SECRET}@${MYSQL_HOST}:${MYSQL_PORT}/${db.name}`, expect: /mariadb-dump exited 2: .*Access denied/ },
  };
});

for (const format of ['plain', 'custom'] as const) {
  roundTrip(`PostgreSQL (${format})`, HAVE_POSTGRES, async () => {
    const db = await freshPostgresDatabase();
    await fillPostgres(db.name);
    return {
      url: `${db.url}?format=${format}`,
      path: `/postgres/${db.name}.${format === 'custom' ? 'dump' : 'sql'}`,
      routines: ['audit_customer', 'double_it'],
      fingerprint: () => fingerprintPostgres(db.name),
      drop: () => db.drop(),
      cleanup: () => db.drop(),
      scratch: `postgres://postgres@${PG_HOST}:${PG_PORT}`,
      exists: async (name) => {
        const c = await pgClient('postgres');
        try {
          return (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
        } finally {
          await c.end();
        }
      },
      failing: { url: `postgres://postgres:${SECRET}@${PG_HOST}:${PG_PORT}/${db.name}_missing`, expect: /pg_dump exited 1: .*does not exist/ },
      // A custom-format archive records when it was made in its header, so the first chunk
      // (about 1 MiB of this 10 MB dump) is new each time; the rest must deduplicate.
      maxNewShare: format === 'custom' ? 0.25 : 0.01,
    };
  }, format === 'custom' ? /pg_restore exited 1: .*already exists/ : /psql exited 3: .*already exists/);
}

roundTrip('SQLite', true, async () => {
  const dir = await tempDir('cairn-sqlite-');
  const file = path.join(dir, 'shop.db');
  fillSqlite(file);
  return {
    url: `sqlite:${file}`,
    path: '/sqlite/shop.db',
    routines: [],
    fingerprint: async () => fingerprintSqlite(file),
    drop: () => fs.rm(file),
    cleanup: () => fs.rm(dir, { recursive: true, force: true }),
    exists: async () => (await fs.readdir(dir)).some((f) => f.startsWith('cairn_verify_')),
    failing: { url: `sqlite:${path.join(dir, 'missing.db')}`, expect: /cannot open SQLite database/ },
  };
});

describe('backup --db with several databases', () => {
  it('writes one snapshot per database, and a failed one does not stop the others', async () => {
    const repo = await makeRepoPaths();
    const dir = await tempDir('cairn-sqlite-');
    try {
      ok(await cairn(repo, ['init']), 'init');
      fillSqlite(path.join(dir, 'a.db'));
      fillSqlite(path.join(dir, 'c.db'));
      const r = await cairn(repo, ['--json', 'backup', '--db', `sqlite:${dir}/a.db`, '--db', `sqlite:${dir}/b.db`, '--db', `sqlite:${dir}/c.db`]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('1 of 3 database backups failed');
      expect(summaries(r.out).map((x) => x.path)).toEqual(['/sqlite/a.db', '/sqlite/c.db']);
      const snaps = JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out) as { paths: string[] }[];
      expect(snaps.map((x) => x.paths)).toEqual([['/sqlite/a.db'], ['/sqlite/c.db']]);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rm(path.dirname(repo.dir), { recursive: true, force: true });
    }
  });
});

describe.skipIf(!HAVE_MARIADB)('MariaDB passwords', () => {
  it('reach the tools through the option file whatever characters they hold: from a file and from CAIRN_DB_PASSWORD', async () => {
    const repo = await makeRepoPaths();
    const db = await freshMysqlDatabase();
    const user = `cairn_p_${db.name.slice(-6)}`;
    const password = `q"uo'te\\back#hash:colon $x ${SECRET}`;
    const c = await mysqlConnection('mysql');
    try {
      ok(await cairn(repo, ['init']), 'init');
      await c.query(`CREATE USER ?@'%' IDENTIFIED BY ?`, [user, password]);
      await c.query(`CREATE USER ?@'localhost' IDENTIFIED BY ?`, [user, password]);
      for (const host of ['%', 'localhost']) {
        await c.query(`GRANT ALL ON \`${db.name}\`.* TO ?@?`, [user, host]);
        await c.query(`GRANT ALL ON \`${db.name}_r\`.* TO ?@?`, [user, host]);
      }
      await c.query(`CREATE TABLE \`${db.name}\`.t (id INT PRIMARY KEY, v TEXT)`);
      await c.query(`INSERT INTO \`${db.name}\`.t VALUES (1, 'one'), (2, NULL)`);
      const file = path.join(path.dirname(repo.dir), 'db-password');
      await fs.writeFile(file, `${password}\n`, { mode: 0o600 });
      const url = `mysql://${user}@${MYSQL_HOST}:${MYSQL_PORT}/${db.name}`;
      ok(await cairn(repo, ['backup', '--db', url, '--db-password-file', file]), 'backup with --db-password-file');
      ok(await cairn(repo, ['backup', '--db', url], { env: { CAIRN_DB_PASSWORD: password } }), 'backup with CAIRN_DB_PASSWORD');
      ok(await cairn(repo, ['db-restore', 'latest', '--to', `mysql://${user}@${MYSQL_HOST}:${MYSQL_PORT}/${db.name}_r`, '--db-password-file', file]), 'db-restore');
      const [rows] = await c.query<import('mysql2').RowDataPacket[]>(`SELECT id, v FROM \`${db.name}_r\`.t ORDER BY id`);
      expect(rows.map((r) => [r.id, r.v])).toEqual([[1, 'one'], [2, null]]);
      const wrong = await cairn(repo, ['backup', '--db', url], { env: { CAIRN_DB_PASSWORD: 'nope' } });
      expect(wrong.stderr).toMatch(/Access denied/);
    } finally {
      for (const host of ['%', 'localhost']) await c.query('DROP USER IF EXISTS ?@?', [user, host]);
      await c.query(`DROP DATABASE IF EXISTS \`${db.name}_r\``);
      await c.end();
      await db.drop();
      await fs.rm(path.dirname(repo.dir), { recursive: true, force: true });
    }
  });
});

describe.skipIf(!HAVE_POSTGRES)('an interrupted database backup', () => {
  it('stops the dump tool, removes the credential folder and writes no snapshot', async () => {
    const repo = await makeRepoPaths();
    const db = await freshPostgresDatabase();
    const tmp = await tempDir('cairn-tmp-');
    const holder = await pgClient(db.name);
    try {
      ok(await cairn(repo, ['init']), 'init');
      await holder.query('CREATE TABLE t (id int)');
      // pg_dump waits for this lock, so the dump is surely running when the signal comes.
      await holder.query('BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
      const child = spawn(process.execPath, [CLI, 'backup', '--db', db.url], { env: { ...process.env, ...repo.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
      const deadline = Date.now() + 20_000;
      const dumping = async (): Promise<boolean> => (await pgClient('postgres').then(async (c) => {
        try {
          return (await c.query("SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'pg_dump' AND wait_event_type = 'Lock'", [db.name])).rowCount === 1;
        } finally {
          await c.end();
        }
      }));
      while (!(await dumping())) {
        if (Date.now() > deadline) throw new Error(`pg_dump never waited for the lock: ${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await fs.readdir(tmp)).filter((f) => f.startsWith('cairn-cred-'))).toHaveLength(1);
      child.kill('SIGINT');
      expect(await exited).toBe(130);
      expect(await fs.readdir(tmp)).toEqual([]);
      expect(await dumping()).toBe(false);
      expect(JSON.parse(ok(await cairn(repo, ['snapshots', '--json']), 'snapshots').out)).toEqual([]);
    } finally {
      await holder.end();
      await db.drop();
      await fs.rm(tmp, { recursive: true, force: true });
      await fs.rm(path.dirname(repo.dir), { recursive: true, force: true });
    }
  });
});
