import fs from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { CredentialDir, withCredentials } from './credentials.js';
import { dumpKindOfPath } from './engine.js';
import { parseDbUrl, redactUrl } from './url.js';

describe('database URLs', () => {
  it('parses each engine with defaults, decoded passwords and the PostgreSQL format', () => {
    expect(parseDbUrl('mysql://bob:p%40ss%3Aw@db.local:3307/shop')).toEqual({ engine: 'mysql', database: 'shop', host: 'db.local', port: 3307, user: 'bob', password: 'p@ss:w', format: 'plain' });
    expect(parseDbUrl('mariadb://h/shop')).toMatchObject({ engine: 'mysql', port: 3306, user: 'root', password: undefined });
    expect(parseDbUrl('postgresql://u@h/app?format=custom')).toMatchObject({ engine: 'postgres', port: 5432, user: 'u', format: 'custom' });
    expect(parseDbUrl('sqlite:/var/lib/app/data.sqlite3')).toMatchObject({ engine: 'sqlite', database: 'data', file: '/var/lib/app/data.sqlite3' });
    expect(parseDbUrl('postgres://u@h:5433', { needName: false })).toMatchObject({ database: '', port: 5433 });
  });

  it('refuses what cannot be a dump: unknown schemes, missing names, names a tool could take for an option', () => {
    expect(() => parseDbUrl('oracle://h/x')).toThrow(/unknown database URL scheme/);
    expect(() => parseDbUrl('mysql://h')).toThrow(/names no database/);
    expect(() => parseDbUrl('mysql://h/-x')).toThrow(/invalid database name/);
    expect(() => parseDbUrl('mysql://h/a%2Fb')).toThrow(/invalid database name/);
    expect(() => parseDbUrl('mysql://h/x?format=custom')).toThrow(/PostgreSQL only/);
    expect(() => parseDbUrl('mysql://u:secret@h:bad/x')).toThrow(/mysql:\/\/u:\*\*\*@h:bad\/x/);
  });

  it('redacts passwords for messages and process titles', () => {
    expect(redactUrl('mysql://u:s3cr3t@h:1/x')).toBe('mysql://u:***@h:1/x');
    expect(redactUrl('postgres://u@h/x')).toBe('postgres://u@h/x');
  });

  it('tells the engine and format from a snapshot path', () => {
    expect(dumpKindOfPath('/mysql/shop.sql')).toEqual({ engine: 'mysql', format: 'plain', database: 'shop' });
    expect(dumpKindOfPath('/postgres/app.dump')).toEqual({ engine: 'postgres', format: 'custom', database: 'app' });
    expect(dumpKindOfPath('/sqlite/x.db')).toEqual({ engine: 'sqlite', format: 'plain', database: 'x' });
    expect(dumpKindOfPath('/mysql/shop.dump')).toBeNull();
    expect(dumpKindOfPath('/etc/passwd')).toBeNull();
  });
});

describe('credential files', () => {
  const loc = { engine: 'mysql' as const, database: 'd', host: 'h', port: 1, user: 'u"1', password: 'a"b\\c#d:e\nf', format: 'plain' as const };

  it('writes 0600 files in a 0700 folder, escaped so every character of a password survives, and removes them', async () => {
    let dir = '';
    await withCredentials(async (cred) => {
      dir = cred.dir;
      expect((await fs.stat(cred.dir)).mode & 0o777).toBe(0o700);
      const cnf = await cred.mysqlOptionFile(loc);
      expect((await fs.stat(cnf)).mode & 0o777).toBe(0o600);
      expect(await fs.readFile(cnf, 'utf8')).toBe('[client]\nuser="u\\"1"\npassword="a\\"b\\\\c#d:e\\nf"\n');
      const pgpass = await cred.pgPassFile({ ...loc, engine: 'postgres' });
      expect(await fs.readFile(pgpass, 'utf8')).toBe('*:*:*:u"1:a"b\\\\c#d\\:e\nf\n');
    });
    await expect(fs.stat(dir)).rejects.toThrow(/ENOENT/);
  });

  it('removes the folder even when the work fails', async () => {
    let dir = '';
    await expect(
      withCredentials(async (cred) => {
        dir = cred.dir;
        throw new Error('dump failed');
      }),
    ).rejects.toThrow('dump failed');
    await expect(fs.stat(dir)).rejects.toThrow(/ENOENT/);
    const cred = await CredentialDir.create();
    await cred.remove();
  });
});
