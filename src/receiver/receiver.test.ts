import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/tools.js';
import { HAVE_MARIADB, HAVE_POSTGRES, freshMysqlDatabase, freshPostgresDatabase, type FreshDatabase } from '../../test/support/databases.js';
import {
  archiveName,
  describeFile,
  dropUploadMidway,
  errorBody,
  listTree,
  rawRequest,
  requestJson,
  tempFiles,
  waitFor,
  writeDumpZip,
  type TestArchive,
} from '../../test/support/receiver.js';
import { parseSize } from '../util/size.js';
import { postArchive, uploadArchive, ReceiverRequestError } from './client.js';
import { checkArchiveName, checkDatabaseName, parseBackupId } from './names.js';
import { startReceiver, type RunningReceiver } from './server.js';

const MAX = 1024 * 1024;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/;
const SUCCESS = 'success';

describe('receiver names and sizes', () => {
  it('accepts database names of letters, digits and underscores only', () => {
    expect(checkDatabaseName('pt_xyz_01')).toBe('pt_xyz_01');
    expect(checkDatabaseName('a'.repeat(64))).toBe('a'.repeat(64));
    for (const bad of ['', 'a'.repeat(65), '..', '../x', 'a-b', 'a b', 'é', 'a/b', 'a%2e']) expect(() => checkDatabaseName(bad)).toThrow(/invalid database name/);
  });

  it('accepts archive names of the form the dump pipeline writes, for the right database', () => {
    const uuid = '123e4567-e89b-12d3-a456-426614174000';
    expect(checkArchiveName(`mysql-2026-01-02-03-04-05-shop-${uuid}.sql.zip`, 'shop')).toBe(`mysql-2026-01-02-03-04-05-shop-${uuid}.sql.zip`);
    expect(checkArchiveName(`postgres-2026-01-02-03-04-05-shop_2-${uuid.toUpperCase()}.sql.zip`, 'shop_2')).toMatch(/^postgres-/);
    expect(() => checkArchiveName(`mysql-2026-01-02-03-04-05-crm-${uuid}.sql.zip`, 'shop')).toThrow(/archive of database crm, not of shop/);
    for (const bad of [
      `../mysql-2026-01-02-03-04-05-shop-${uuid}.sql.zip`,
      `mysql-2026-01-02-03-04-05-shop-${uuid}.sql.zip/..`,
      `mysql-2026-01-02-03-04-05-shop-${uuid}.sql`,
      `mysql-2026-01-02-03-04-shop-${uuid}.sql.zip`,
      `sqlite-2026-01-02-03-04-05-shop-${uuid}.sql.zip`,
      `mysql-2026-01-02-03-04-05-shop-not-a-uuid.sql.zip`,
      '',
    ]) {
      expect(() => checkArchiveName(bad, 'shop')).toThrow(/invalid file name/);
    }
  });

  it('parses ids and sizes', () => {
    expect(parseBackupId('42')).toBe(42);
    for (const bad of ['0', '-1', '01', '1.5', '..', '', '1e3', '9'.repeat(16)]) expect(() => parseBackupId(bad)).toThrow(/invalid backup id/);
    expect(parseSize('2G')).toBe(2 * 1024 ** 3);
    expect(parseSize('2GiB')).toBe(2 * 1024 ** 3);
    expect(parseSize('512k')).toBe(512 * 1024);
    expect(parseSize('1.5M')).toBe(1.5 * 1024 * 1024);
    expect(parseSize('1000')).toBe(1000);
    for (const bad of ['', '0', '-1', 'G', '2X', '2iB']) expect(() => parseSize(bad)).toThrow(/invalid size/);
  });
});

interface CatalogCase {
  name: string;
  enabled: boolean;
  make: () => Promise<FreshDatabase | undefined>;
}

const catalogs: CatalogCase[] = [
  { name: 'SQLite (default)', enabled: true, make: async () => undefined },
  { name: 'MariaDB', enabled: HAVE_MARIADB, make: () => freshMysqlDatabase('cairn_rcv') },
  { name: 'PostgreSQL', enabled: HAVE_POSTGRES, make: () => freshPostgresDatabase('cairn_rcv') },
];

function ref(a: { id: number; file_name: string; timestamp: string }) {
  return { id: a.id, file_name: a.file_name, timestamp: a.timestamp };
}

for (const c of catalogs) {
  describe.runIf(c.enabled)(`receiver with a ${c.name} catalog`, () => {
    let parent: string;
    let storage: string;
    let files: string;
    let catalog: FreshDatabase | undefined;
    let receiver: RunningReceiver;
    const stored: Record<string, { id: number; database_name: string; file_name: string; timestamp: string }> = {};

    const start = () => startReceiver({ storage, catalog: catalog?.url, maxSize: MAX });

    beforeAll(async () => {
      parent = await tempDir('cairn-receiver-');
      storage = path.join(parent, 'store');
      files = await tempDir('cairn-receiver-files-');
      catalog = await c.make();
      receiver = await start();
    });

    afterAll(async () => {
      await receiver?.close();
      await catalog?.drop();
      await fs.rm(parent, { recursive: true, force: true });
      await fs.rm(files, { recursive: true, force: true });
    });

    async function upload(database: string, archive: TestArchive) {
      const res = await postArchive(`${receiver.url}/${database}`, archive.path);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const data = (res.body as { data: { id: number; timestamp: string } }).data;
      expect(res.body).toEqual({
        data: { id: data.id, database_name: database, file_name: archive.fileName, timestamp: data.timestamp, sha256: archive.sha256, size: archive.size },
        message: SUCCESS,
      });
      expect(data.timestamp).toMatch(TIMESTAMP);
      expect(await describeFile(path.join(storage, archive.fileName))).toEqual({ ...archive, path: path.join(storage, archive.fileName) });
      stored[archive.fileName] = { id: data.id, database_name: database, file_name: archive.fileName, timestamp: data.timestamp };
      return stored[archive.fileName];
    }

    it('answers every route with the documented shapes', async () => {
      expect((await requestJson(`${receiver.url}/`)).body).toEqual({ data: [], message: SUCCESS });
      const before = new Date(Date.now() - 1000).toISOString().slice(0, 19).replace('T', ' ');
      const a = await upload('shop', await writeDumpZip(files, 'shop'));
      const b = await upload('shop', await writeDumpZip(files, 'shop', { sql: 'INSERT INTO t VALUES (2);\n' }));
      const crm = await upload('crm', await writeDumpZip(files, 'crm', { engine: 'postgres' }));
      const after = new Date(Date.now() + 1000).toISOString().slice(0, 19).replace('T', ' ');
      expect(a.timestamp >= before && crm.timestamp <= after).toBe(true);
      expect(b.id).toBeGreaterThan(a.id);

      const latest = await requestJson(`${receiver.url}/`);
      expect(latest.status).toBe(200);
      expect(latest.body).toEqual({
        data: [
          { database_name: 'crm', latest_backup: ref(crm) },
          { database_name: 'shop', latest_backup: ref(b) },
        ],
        message: SUCCESS,
      });
      const history = await requestJson(`${receiver.url}/shop`);
      expect(history.status).toBe(200);
      expect(history.body).toEqual({ data: { database_name: 'shop', histories: [ref(b), ref(a)] }, message: SUCCESS });

      const dl = await fetch(`${receiver.url}/${a.id}/download`);
      expect(dl.status).toBe(200);
      expect(dl.headers.get('content-type')).toBe('application/zip');
      expect(dl.headers.get('content-disposition')).toBe(`attachment; filename="${a.file_name}"`);
      expect(Buffer.from(await dl.arrayBuffer()).equals(await fs.readFile(path.join(files, a.file_name)))).toBe(true);
    });

    it('refuses bad input with a JSON error, writes nothing outside the storage folder and keeps answering', async () => {
      const url = receiver.url;
      const good = await writeDumpZip(files, 'shop');
      const post = (p: string, file: string, opts: Parameters<typeof postArchive>[2] = {}) => postArchive(`${url}${p}`, file, opts);
      const expectError = (res: { status: number; body: unknown }, status: number, code: string, message: string) => {
        expect({ status: res.status, body: res.body }).toEqual({ status, body: errorBody(code, message) });
      };
      const dbName = (n: string) => `invalid database name ${JSON.stringify(n)}: use 1-64 letters, digits and underscores`;
      const fileName = (n: string) => `invalid file name ${JSON.stringify(n)}: expected mysql-YYYY-MM-DD-HH-mm-ss-{database_name}-{uuid}.sql.zip (or postgres-…)`;
      const notZip = 'the file is not a readable zip archive: End of central directory record signature not found. Either not a zip file, or file is truncated.';

      // Names with ../ and %2e%2e, in database names, ids and file names.
      expectError(await post('/..%2F..%2Fevil', good.path), 400, 'BAD_INPUT', dbName('../../evil'));
      expectError(await post('/%2e%2e', good.path), 400, 'BAD_INPUT', dbName('..'));
      expectError(await post('/%2E%2E%2F', good.path), 400, 'BAD_INPUT', dbName('../'));
      expectError(await requestJson(`${url}/%2e%2e%2f%2e%2e%2fetc%2fpasswd`), 400, 'BAD_INPUT', dbName('../../etc/passwd'));
      expectError(await requestJson(`${url}/..%2F..%2Fetc/download`), 400, 'BAD_INPUT', 'invalid backup id "../../etc": ids are positive integers');
      // fetch would resolve these dot segments before sending; a raw request sends them as they are.
      const raw = async (head: string, body = '') => {
        const r = await rawRequest(url, head, body);
        return { status: r.status, body: JSON.parse(r.body) as unknown };
      };
      expectError(await raw('GET /%2e%2e/download HTTP/1.1'), 400, 'BAD_INPUT', 'invalid backup id "..": ids are positive integers');
      expectError(await raw('GET /../download HTTP/1.1'), 400, 'BAD_INPUT', 'invalid backup id "..": ids are positive integers');
      expectError(await raw('GET /%2e%2e HTTP/1.1'), 400, 'BAD_INPUT', dbName('..'));
      expectError(await raw('GET /../../etc/passwd HTTP/1.1'), 404, 'NOT_FOUND', 'no route GET /../../etc/passwd');
      for (const n of [`../${good.fileName}`, `..%2f${good.fileName}`, `%2e%2e/${good.fileName}`, `/tmp/${good.fileName}`, `${good.fileName}/..`]) {
        expectError(await post('/shop', good.path, { fileName: n }), 400, 'BAD_INPUT', fileName(n));
      }
      expectError(await requestJson(`${url}/${'a'.repeat(65)}`), 400, 'BAD_INPUT', dbName('a'.repeat(65)));

      // The form: no file field, the file in another field, not multipart at all.
      const fieldsOnly = new FormData();
      fieldsOnly.append('database_name', 'shop');
      expectError(await requestJson(`${url}/shop`, { method: 'POST', body: fieldsOnly }), 400, 'BAD_INPUT', 'the request has no file field: send multipart/form-data with the zip archive in the field "file"');
      expectError(await post('/shop', good.path, { field: 'upload' }), 400, 'BAD_INPUT', 'unexpected file field "upload": send multipart/form-data with the zip archive in the field "file"');
      expectError(
        await requestJson(`${url}/shop`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"file":"x"}' }),
        400,
        'BAD_INPUT',
        'not a multipart request: send multipart/form-data with the zip archive in the field "file"',
      );
      expectError(
        await requestJson(`${url}/shop`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: await fs.readFile(good.path) }),
        415,
        'BAD_INPUT',
        'unsupported content type: send multipart/form-data with the zip archive in the field "file"',
      );

      // Multipart bodies that are not well formed.
      const rawPost = (contentType: string, body: string) => raw(`POST /shop HTTP/1.1\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}`, body);
      expectError(await rawPost('multipart/form-data', 'abc'), 400, 'BAD_INPUT', 'malformed multipart body: Multipart: Boundary not found');
      const cutShort = `--zz\r\nContent-Disposition: form-data; name="file"; filename="${good.fileName}"\r\n\r\nPK\x03\x04 and no end`;
      expectError(await rawPost('multipart/form-data; boundary=zz', cutShort), 400, 'BAD_INPUT', 'malformed multipart body: Unexpected end of multipart data');

      // Files that are not zips: text, empty, a zip cut short.
      const text = path.join(files, archiveName('shop'));
      await fs.writeFile(text, 'CREATE TABLE t (id int);\n');
      expectError(await post('/shop', text), 400, 'BAD_INPUT', notZip);
      const empty = path.join(files, archiveName('shop'));
      await fs.writeFile(empty, '');
      expectError(await post('/shop', empty), 400, 'BAD_INPUT', notZip);
      const cut = path.join(files, archiveName('shop'));
      await fs.writeFile(cut, (await fs.readFile(good.path)).subarray(0, good.size - 10));
      expectError(await post('/shop', cut), 400, 'BAD_INPUT', notZip);
      const noEntries = await writeDumpZip(files, 'shop');
      await fs.writeFile(noEntries.path, Buffer.from('504b0506' + '00'.repeat(18), 'hex'));
      expectError(await post('/shop', noEntries.path), 400, 'BAD_INPUT', 'the zip archive holds no files');

      // A zip named for another database.
      const other = await writeDumpZip(files, 'crm');
      expectError(await post('/shop', other.path), 400, 'BAD_INPUT', `file ${other.fileName} is an archive of database crm, not of shop: upload it to /crm`);

      // Over the size limit: announced by Content-Length, and found while streaming a chunked body.
      const big = await writeDumpZip(files, 'shop', { sql: randomBytes(MAX + 100_000) });
      expect(big.size).toBeGreaterThan(MAX);
      const tooLarge = `the file is larger than the receiver's limit of ${MAX} bytes`;
      expectError(await post('/shop', big.path), 413, 'TOO_LARGE', tooLarge);
      expectError(await post('/shop', big.path, { chunked: true }), 413, 'TOO_LARGE', tooLarge);

      // A duplicate, and ids nobody has.
      const first = await upload('shop', good);
      expectError(await post('/shop', good.path), 409, 'CONFLICT', `${good.fileName} is already stored: an archive is uploaded once, under a new name for each dump`);
      expectError(await requestJson(`${url}/999999/download`), 404, 'NOT_FOUND', 'no backup with id 999999');
      expectError(await requestJson(`${url}/nobody_here`), 404, 'NOT_FOUND', 'no backups of database nobody_here have been received');
      expectError(await requestJson(`${url}/shop/extra`), 404, 'NOT_FOUND', 'no route GET /shop/extra');
      await expect(uploadArchive(url, 'shop', good.path)).rejects.toThrow(ReceiverRequestError);

      // Nothing outside the storage folder; inside it only the archives (and the SQLite catalog).
      expect(await listTree(parent)).toEqual(['store/', ...(await listTree(storage)).map((n) => `store/${n}`)].sort());
      const inStore = (await listTree(storage)).filter((n) => !n.startsWith('receiver.db'));
      expect(inStore).toEqual(Object.keys(stored).sort());
      expect(await tempFiles(storage)).toEqual([]);

      // Still answering, with the history unchanged by the refusals.
      const history = await requestJson(`${url}/shop`);
      expect(history.status).toBe(200);
      expect((history.body as { data: { histories: unknown[] } }).data.histories[0]).toEqual(ref(first));
    });

    it('leaves no file, row or temporary file after a connection dropped mid-upload', async () => {
      const before = await requestJson(`${receiver.url}/`);
      const name = archiveName('shop');
      await dropUploadMidway(receiver.url, '/shop', name, storage, 300_000, 900_000);
      await waitFor(async () => (await tempFiles(storage)).length === 0, 'the temporary file to be removed');
      await expect(fs.access(path.join(storage, name))).rejects.toThrow(/ENOENT/);
      const after = await requestJson(`${receiver.url}/`);
      expect(after.status).toBe(200);
      expect(after.body).toEqual(before.body);
      const names = (await requestJson(`${receiver.url}/shop`)).body as { data: { histories: { file_name: string }[] } };
      expect(names.data.histories.map((h) => h.file_name)).not.toContain(name);
    });

    it('stores exactly one of two concurrent uploads of one name', async () => {
      const archive = await writeDumpZip(files, 'race', { sql: randomBytes(900_000) });
      const results = await Promise.all([postArchive(`${receiver.url}/race`, archive.path), postArchive(`${receiver.url}/race`, archive.path)]);
      expect(results.map((r) => r.status).sort()).toEqual([200, 409]);
      const history = (await requestJson(`${receiver.url}/race`)).body as { data: { histories: { file_name: string }[] } };
      expect(history.data.histories.map((h) => h.file_name)).toEqual([archive.fileName]);
      expect(await describeFile(path.join(storage, archive.fileName))).toEqual({ ...archive, path: path.join(storage, archive.fileName) });
      expect(await tempFiles(storage)).toEqual([]);
    });

    it('keeps its history across a restart and sweeps temporary files left by a crash', async () => {
      const before = await requestJson(`${receiver.url}/`);
      await receiver.close();
      const leftover = path.join(storage, '.cairn-upload-00000000-0000-4000-8000-000000000000.part');
      await fs.writeFile(leftover, 'half an upload');
      receiver = await start();
      expect(await tempFiles(storage)).toEqual([]);
      expect((await requestJson(`${receiver.url}/`)).body).toEqual(before.body);
    });
  });
}

describe('receiver options', () => {
  let parent: string;
  let files: string;
  const running: RunningReceiver[] = [];

  beforeAll(async () => {
    parent = await tempDir('cairn-receiver-');
    files = await tempDir('cairn-receiver-files-');
  });

  afterAll(async () => {
    for (const r of running) await r.close();
    await fs.rm(parent, { recursive: true, force: true });
    await fs.rm(files, { recursive: true, force: true });
  });

  it('requires the bearer token on every route when one is set', async () => {
    const storage = path.join(parent, 'token');
    const r = await startReceiver({ storage, token: 's3cret-token' });
    running.push(r);
    const archive = await writeDumpZip(files, 'shop');
    const refusal = errorBody('UNAUTHORIZED', 'missing or wrong bearer token: send "Authorization: Bearer <token>"');
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic czNjcmV0LXRva2Vu' }, { authorization: 'Bearer s3cret-token-and-more' }];
    for (const headers of attempts) {
      const res = await requestJson(`${r.url}/`, { headers });
      expect({ status: res.status, body: res.body }).toEqual({ status: 401, body: refusal });
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="cairn-receiver"');
    }
    const refused = await postArchive(`${r.url}/shop`, archive.path, { token: 'wrong' });
    expect({ status: refused.status, body: refused.body }).toEqual({ status: 401, body: refusal });
    expect(await fs.readdir(storage)).not.toContain(archive.fileName);
    const okUpload = await uploadArchive(r.url, 'shop', archive.path, { token: 's3cret-token' });
    expect(okUpload.file_name).toBe(archive.fileName);
    const listed = await requestJson(`${r.url}/`, { headers: { authorization: 'Bearer s3cret-token' } });
    expect(listed.body).toEqual({ data: [{ database_name: 'shop', latest_backup: { id: okUpload.id, file_name: archive.fileName, timestamp: okUpload.timestamp } }], message: SUCCESS });
  });

  it('keeps the newest N archives of each database', async () => {
    const storage = path.join(parent, 'keep');
    const r = await startReceiver({ storage, keep: 2 });
    running.push(r);
    const shop: TestArchive[] = [];
    for (let i = 0; i < 4; i++) {
      const a = await writeDumpZip(files, 'shop', { sql: `-- ${i}\n` });
      await uploadArchive(r.url, 'shop', a.path);
      shop.push(a);
    }
    const crm = await writeDumpZip(files, 'crm');
    await uploadArchive(r.url, 'crm', crm.path);
    const history = (await requestJson(`${r.url}/shop`)).body as { data: { histories: { file_name: string }[] } };
    expect(history.data.histories.map((h) => h.file_name)).toEqual([shop[3].fileName, shop[2].fileName]);
    expect((await fs.readdir(storage)).filter((n) => n.endsWith('.zip')).sort()).toEqual([shop[2].fileName, shop[3].fileName, crm.fileName].sort());
  });

  it('refuses options that make no sense', async () => {
    await expect(startReceiver({ storage: path.join(parent, 'bad'), keep: 0 })).rejects.toThrow(/keep at least 1/);
    await expect(startReceiver({ storage: path.join(parent, 'bad'), token: '' })).rejects.toThrow(/token is empty/);
  });
});
