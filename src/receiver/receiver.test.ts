import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type RunningReceiver } from './server.js';
import { tempDir } from '../../test/support/tools.js';
import { HAVE_MARIADB, freshMysqlDatabase, type FreshDatabase } from '../../test/support/databases.js';
import { archiveName, makeZip } from '../../test/support/zips.js';

interface Json {
  status: number;
  body: Record<string, unknown> & { data?: unknown; message?: string; error?: { code: string; message: string } };
}

async function upload(url: string, db: string, fileName: string, content: Buffer, opts: { field?: string; token?: string } = {}): Promise<Json> {
  const form = new FormData();
  form.append(opts.field ?? 'file', new Blob([content]), fileName);
  const res = await fetch(`${url}/${db}`, { method: 'POST', body: form, headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {} });
  return { status: res.status, body: (await res.json()) as Json['body'] };
}

async function get(url: string, p: string, token?: string): Promise<Json> {
  const res = await fetch(`${url}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, body: (await res.json()) as Json['body'] };
}

/** Sends a request line exactly as written (no URL normalisation) and returns status and body. */
function rawRequest(port: number, request: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(Buffer.from(request, 'latin1')));
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    s.on('error', reject);
    s.on('close', () => {
      const text = Buffer.concat(parts).toString('utf8');
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
  });
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('the dump receiver', () => {
  let base: string;
  let storage: string;
  let r: RunningReceiver;
  let port: number;

  beforeAll(async () => {
    base = await tempDir('cairn-receiver-');
    storage = path.join(base, 'store');
    // A leftover from a crashed upload must be swept at start.
    await fs.mkdir(storage);
    await fs.writeFile(path.join(storage, '.upload-leftover.tmp'), 'half');
    r = await startReceiver({ storage, port: 0, maxSize: 256 * 1024 });
    port = Number(new URL(r.url).port);
  });
  afterAll(async () => r?.close());

  it('sweeps temporary files left by an earlier crash', async () => {
    expect((await fs.readdir(storage)).filter((n) => n.startsWith('.upload-'))).toEqual([]);
  });

  it('stores uploads under their own names and answers with the documented shapes', async () => {
    const older = archiveName('shop', { at: new Date('2026-11-01T10:00:00Z') });
    const newer = archiveName('shop', { at: new Date('2026-11-02T10:00:00Z') });
    const other = archiveName('blog_2', { engine: 'postgres' });
    const zOld = await makeZip('dump.sql', 'old dump');
    const zNew = await makeZip('dump.sql', 'new dump');
    const zOther = await makeZip('dump.sql', 'blog');

    const first = await upload(r.url, 'shop', older, zOld);
    expect(first.status).toBe(200);
    expect(first.body.message).toBe('success');
    const d = first.body.data as Record<string, unknown>;
    expect(Object.keys(d).sort()).toEqual(['database_name', 'file_name', 'id', 'sha256', 'size', 'timestamp']);
    expect(d).toMatchObject({ database_name: 'shop', file_name: older, size: zOld.length, sha256: sha256(zOld) });
    expect(d.timestamp).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    await new Promise((res) => setTimeout(res, 5));
    const second = await upload(r.url, 'shop', newer, zNew);
    expect(second.status).toBe(200);
    expect((await upload(r.url, 'blog_2', other, zOther)).status).toBe(200);

    expect(await fs.readFile(path.join(storage, older))).toEqual(zOld);
    expect(await fs.readFile(path.join(storage, newer))).toEqual(zNew);

    const latest = await get(r.url, '/');
    expect(latest.status).toBe(200);
    const secondData = second.body.data as { id: string; timestamp: string };
    expect(latest.body).toEqual({
      data: [
        { database_name: 'blog_2', latest_backup: expect.objectContaining({ file_name: other }) },
        { database_name: 'shop', latest_backup: { id: secondData.id, file_name: newer, timestamp: secondData.timestamp } },
      ],
      message: 'success',
    });

    const history = await get(r.url, '/shop');
    expect(history.status).toBe(200);
    expect(history.body).toEqual({
      data: {
        database_name: 'shop',
        histories: [
          { id: secondData.id, file_name: newer, timestamp: secondData.timestamp },
          { id: d.id, file_name: older, timestamp: d.timestamp },
        ],
      },
      message: 'success',
    });

    const dl = await fetch(`${r.url}/${secondData.id}/download`);
    expect(dl.status).toBe(200);
    expect(dl.headers.get('content-type')).toBe('application/zip');
    expect(dl.headers.get('content-disposition')).toContain(newer);
    expect(Buffer.from(await dl.arrayBuffer())).toEqual(zNew);
  });

  it('answers bad input with a 4xx and a JSON error, writes nothing outside its folder, and stays up', async () => {
    const before = (await fs.readdir(base)).sort();
    const inStore = async () => (await fs.readdir(storage)).filter((n) => !n.startsWith('.cairn-receiver.db')).sort();
    const stored = await inStore();
    const zip = await makeZip('dump.sql', 'x');
    const expectError = (res: Json, status: number, code: string, message: RegExp) => {
      expect(res.status).toBe(status);
      expect(res.body.error?.code).toBe(code);
      expect(res.body.error?.message).toMatch(message);
      expect(res.body.message).toBe(res.body.error?.message);
    };

    // fetch() would normalise dot segments away; these go on the wire exactly as written.
    for (const [raw, status, code] of [
      ['/%2e%2e', 400, 'BAD_DATABASE_NAME'],
      ['/..', 400, 'BAD_DATABASE_NAME'],
      ['/%2e%2e%2f%2e%2e%2fetc', 400, 'BAD_DATABASE_NAME'],
      ['/../../etc/passwd', 404, 'NOT_FOUND'],
      ['/..%2F..%2Fetc', 400, 'BAD_DATABASE_NAME'],
      ['/%2e%2e/download', 404, 'NOT_FOUND'],
    ] as const) {
      const res = await rawRequest(port, `GET ${raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect({ raw, status: res.status, code: JSON.parse(res.body).error.code }).toEqual({ raw, status, code });
    }
    const boundary = 'b0undary';
    const body = Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${archiveName('x')}"\r\n\r\n`), zip, Buffer.from(`\r\n--${boundary}--\r\n`)]);
    for (const raw of ['/%2e%2e', '/..%2f..%2ftmp']) {
      const res = await rawRequest(port, `POST ${raw} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${body.length}\r\n\r\n${body.toString('latin1')}`);
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body).error.code).toBe('BAD_DATABASE_NAME');
    }
    expectError(await upload(r.url, 'shop', '../../evil.sql.zip', zip), 400, 'BAD_FILE_NAME', /does not match/);
    expectError(await upload(r.url, 'shop', `../${archiveName('shop')}`, zip), 400, 'BAD_FILE_NAME', /does not match/);
    expectError(await upload(r.url, 'shop', archiveName('shop'), zip, { field: 'upload' }), 400, 'MISSING_FILE', /field "file"/);
    expectError(await upload(r.url, 'shop', archiveName('shop'), Buffer.from('this is not a zip at all')), 400, 'NOT_A_ZIP', /not a readable zip/);
    expectError(await upload(r.url, 'shop', archiveName('blog_2'), zip), 400, 'BAD_FILE_NAME', /belongs to database blog_2, not shop/);
    expectError(await upload(r.url, 'shop', 'backup.zip', zip), 400, 'BAD_FILE_NAME', /does not match/);
    const big = await makeZip('dump.sql', randomBytes(400_000));
    expectError(await upload(r.url, 'shop', archiveName('shop'), big), 413, 'TOO_LARGE', /limit of 262144 bytes/);
    const dup = archiveName('shop');
    expect((await upload(r.url, 'shop', dup, zip)).status).toBe(200);
    expectError(await upload(r.url, 'shop', dup, zip), 409, 'DUPLICATE', /already received/);
    expectError(await get(r.url, '/00000000-0000-4000-8000-000000000000/download'), 404, 'NOT_FOUND', /no backup with id/);
    expectError(await get(r.url, '/not-an-id/download'), 404, 'NOT_FOUND', /no backup with id/);
    expectError(await get(r.url, '/nobody_here'), 404, 'NOT_FOUND', /no backups of database nobody_here/);
    const noForm = await fetch(`${r.url}/shop`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"file":"x"}' });
    expect(noForm.status).toBe(400);
    expect(((await noForm.json()) as Json['body']).error?.code).toBe('BAD_INPUT');
    const emptyForm = new FormData();
    emptyForm.append('note', 'no file here');
    const noFile = await fetch(`${r.url}/shop`, { method: 'POST', body: emptyForm });
    expect(noFile.status).toBe(400);
    expect(((await noFile.json()) as Json['body']).error?.code).toBe('MISSING_FILE');

    expect((await fs.readdir(base)).sort()).toEqual(before);
    expect(await inStore()).toEqual([...stored, dup].sort());
    expect((await get(r.url, '/')).status).toBe(200);
  });

  it('a connection dropped mid-upload leaves no file, no row and no temporary file', async () => {
    const name = archiveName('dropped');
    const zip = await makeZip('dump.sql', Buffer.alloc(100_000, 7));
    const boundary = 'cairnboundary';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: application/zip\r\n\r\n`;
    const tail = `\r\n--${boundary}--\r\n`;
    const length = Buffer.byteLength(head) + zip.length + Buffer.byteLength(tail);
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(`POST /dropped HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: ${length}\r\n\r\n`);
        s.write(head);
        s.write(zip.subarray(0, 50_000), () => setTimeout(() => {
          s.destroy();
          resolve();
        }, 100));
      });
      s.on('error', reject);
    });
    for (let i = 0; i < 100 && (await fs.readdir(storage)).some((n) => n.startsWith('.upload-')); i++) await new Promise((res) => setTimeout(res, 20));
    expect((await fs.readdir(storage)).filter((n) => n.startsWith('.upload-') || n === name)).toEqual([]);
    expect((await get(r.url, '/dropped')).status).toBe(404);
    // And the same file can then be sent in full.
    expect((await upload(r.url, 'dropped', name, zip)).status).toBe(200);
  });

  it('of two uploads of one file name at once, exactly one wins', async () => {
    const name = archiveName('race');
    const a = await makeZip('dump.sql', Buffer.alloc(120_000, 1));
    const b = await makeZip('dump.sql', Buffer.alloc(120_000, 2));
    const results = await Promise.all([upload(r.url, 'race', name, a), upload(r.url, 'race', name, b)]);
    expect(results.map((x) => x.status).sort()).toEqual([200, 409]);
    const winner = results.find((x) => x.status === 200)!.body.data as { sha256: string };
    expect(sha256(await fs.readFile(path.join(storage, name)))).toBe(winner.sha256);
    expect(((await get(r.url, '/race')).body.data as { histories: unknown[] }).histories).toHaveLength(1);
  });
});

describe('receiver options', () => {
  it('requires the bearer token when one is set, and keeps only the newest N per database', async () => {
    const storage = path.join(await tempDir('cairn-receiver-'), 'store');
    const r = await startReceiver({ storage, port: 0, token: 's3cret-token', keep: 2 });
    try {
      const zip = await makeZip('dump.sql', 'x');
      const noToken = await upload(r.url, 'shop', archiveName('shop'), zip);
      expect(noToken.status).toBe(401);
      expect(noToken.body.error).toEqual({ code: 'UNAUTHORIZED', message: expect.stringMatching(/missing bearer token/) });
      const wrong = await get(r.url, '/', 'not-it');
      expect(wrong.status).toBe(401);
      expect(wrong.body.error?.message).toBe('wrong token');
      expect(JSON.stringify(wrong.body)).not.toContain('s3cret');
      const names: string[] = [];
      for (let i = 0; i < 4; i++) {
        names.push(archiveName('shop', { at: new Date(Date.UTC(2026, 10, i + 1)) }));
        expect((await upload(r.url, 'shop', names[i], zip, { token: 's3cret-token' })).status).toBe(200);
        await new Promise((res) => setTimeout(res, 5));
      }
      const h = await get(r.url, '/shop', 's3cret-token');
      expect((h.body.data as { histories: { file_name: string }[] }).histories.map((x) => x.file_name)).toEqual([names[3], names[2]]);
      expect((await fs.readdir(storage)).filter((n) => n.endsWith('.zip')).sort()).toEqual([names[2], names[3]].sort());
    } finally {
      await r.close();
    }
  });
});

describe('receiver history in MariaDB', () => {
  const fresh: FreshDatabase[] = [];
  afterAll(async () => {
    for (const f of fresh) await f.drop();
  });
  it.runIf(HAVE_MARIADB)('keeps history in a MySQL/MariaDB catalog across restarts', async () => {
    const db = await freshMysqlDatabase();
    fresh.push(db);
    const storage = path.join(await tempDir('cairn-receiver-'), 'store');
    const name = archiveName('shop');
    let r = await startReceiver({ storage, port: 0, catalog: db.url });
    expect((await upload(r.url, 'shop', name, await makeZip('dump.sql', 'x'))).status).toBe(200);
    await r.close();
    r = await startReceiver({ storage, port: 0, catalog: db.url });
    try {
      const latest = await get(r.url, '/');
      expect(latest.body.data).toEqual([{ database_name: 'shop', latest_backup: expect.objectContaining({ file_name: name }) }]);
      expect((await fs.readdir(storage)).filter((n) => n.startsWith('.cairn-receiver'))).toEqual([]);
    } finally {
      await r.close();
    }
  });
});
