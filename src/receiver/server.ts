/**
 * The dump receiver: a small HTTP service that accepts uploaded database dump archives, keeps them
 * in a storage folder under the client's own file names, records them in the catalog, and serves
 * their history and downloads. Routes and response shapes are fixed by existing clients:
 *
 *   GET  /                 latest backup of every database
 *   GET  /:db_name         one database's history, newest first
 *   POST /:db_name         multipart/form-data, the zip in field `file`
 *   GET  /:id/download     the stored zip
 *
 * Uploads stream to a temporary file in the storage folder (flat memory, SHA-256 on the way),
 * are checked to be a readable zip, then linked into place atomically: a dropped connection leaves
 * no half file, and of two uploads of one name exactly one wins.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import yauzl from 'yauzl';
import { BACKUP_ID, DATABASE_NAME, formatTimestamp, parseArchiveName } from './names.js';
import { ReceiverStore, type BackupRow } from './store.js';

export interface ReceiverOptions {
  /** Folder that holds the archives; created when missing. */
  storage: string;
  /** Catalog location; defaults to SQLite in `<storage>/.cairn-receiver.db`. */
  catalog?: string;
  /** When set, every request needs `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest accepted archive in bytes (default 2 GiB). */
  maxSize?: number;
  /** Keep only the newest N archives of each database (default: keep all). */
  keep?: number;
  /** Logger: true for JSON logs on stderr, false for none (default). */
  logger?: boolean;
}

export const DEFAULT_MAX_SIZE = 2 * 1024 ** 3;
const TEMP_PREFIX = '.upload-';

/** An answer other than success: a status and a stable code, sent as `{"error":{"code","message"}}`. */
export class ReceiverError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const errorBody = {
  type: 'object',
  properties: {
    error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] },
    message: { type: 'string' },
  },
  required: ['error', 'message'],
} as const;

const backupRef = {
  type: 'object',
  properties: { id: { type: 'string' }, file_name: { type: 'string' }, timestamp: { type: 'string' } },
  required: ['id', 'file_name', 'timestamp'],
} as const;

const errors = { 400: errorBody, 401: errorBody, 404: errorBody, 409: errorBody, 413: errorBody, 500: errorBody };

function ref(r: BackupRow): { id: string; file_name: string; timestamp: string } {
  return { id: r.id, file_name: r.file_name, timestamp: r.timestamp };
}

/** Whether a file is a zip whose central directory can be read and listed. */
function readableZip(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    yauzl.open(file, { lazyEntries: true, autoClose: true }, (err, zip) => {
      if (err || !zip) return resolve(false);
      let entries = 0;
      zip.on('entry', () => {
        entries++;
        zip.readEntry();
      });
      zip.on('end', () => {
        zip.close();
        resolve(entries > 0);
      });
      zip.on('error', () => resolve(false));
      zip.readEntry();
    });
  });
}

function sameToken(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Removes temporary files a crash or a dropped connection left behind. */
async function sweepTemporaries(storage: string): Promise<void> {
  for (const name of await fsp.readdir(storage)) {
    if (name.startsWith(TEMP_PREFIX)) await fsp.rm(path.join(storage, name), { force: true });
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Builds the receiver's fastify app (not yet listening). Close it to release the catalog. */
export async function buildReceiver(opts: ReceiverOptions): Promise<FastifyInstance> {
  const storage = path.resolve(opts.storage);
  await fsp.mkdir(storage, { recursive: true, mode: 0o700 });
  await sweepTemporaries(storage);
  const store = await ReceiverStore.open(opts.catalog ?? `sqlite:${path.join(storage, '.cairn-receiver.db')}`);
  const maxSize = opts.maxSize ?? DEFAULT_MAX_SIZE;

  const app = Fastify({
    logger: opts.logger ? { level: 'info', redact: ['req.headers.authorization'], stream: process.stderr } : false,
    // Names come from the URL: find-my-way decodes %2e and friends, and the validators see the result.
    routerOptions: { maxParamLength: 300 },
  });
  app.addHook('onClose', () => store.close());

  await app.register(multipart, {
    limits: { fileSize: maxSize, files: 1, fields: 16, parts: 32, fieldSize: 64 * 1024 },
    throwFileSizeLimit: false,
    // Keep the client's name as sent, so a name with a path in it is refused rather than quietly cut down.
    preservePath: true,
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    if (err instanceof ReceiverError) return send(reply, err.status, err.code, err.message);
    if (err.code === 'FST_INVALID_MULTIPART_CONTENT_TYPE') return send(reply, 400, 'BAD_INPUT', 'the request must be multipart/form-data with the archive in field "file"');
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return send(reply, 400, 'BAD_INPUT', 'the request must be multipart/form-data with the archive in field "file"');
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) return send(reply, err.statusCode, err.code ?? 'BAD_INPUT', err.message);
    req.log.error({ err }, 'request failed');
    return send(reply, 500, 'INTERNAL', 'the receiver could not complete the request; see its log');
  });
  app.setNotFoundHandler((req, reply) => send(reply, 404, 'NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));

  if (opts.token !== undefined) {
    const token = opts.token;
    app.addHook('onRequest', async (req) => {
      const h = req.headers.authorization ?? '';
      const m = /^Bearer (.+)$/i.exec(h);
      if (!m || !sameToken(m[1], token)) throw new ReceiverError(401, 'UNAUTHORIZED', m ? 'wrong token' : 'missing bearer token (Authorization: Bearer …)');
    });
  }

  app.get('/', { schema: { response: { 200: { type: 'object', properties: { data: { type: 'array', items: { type: 'object', properties: { database_name: { type: 'string' }, latest_backup: backupRef } } }, message: { type: 'string' } } }, ...errors } } }, async () => {
    const rows = await store.latest();
    return { data: rows.map((r) => ({ database_name: r.database_name, latest_backup: ref(r) })), message: 'success' };
  });

  app.get<{ Params: { db_name: string } }>(
    '/:db_name',
    { schema: { response: { 200: { type: 'object', properties: { data: { type: 'object', properties: { database_name: { type: 'string' }, histories: { type: 'array', items: backupRef } } }, message: { type: 'string' } } }, ...errors } } },
    async (req) => {
      const name = checkDatabaseName(req.params.db_name);
      const rows = await store.history(name);
      if (rows.length === 0) throw new ReceiverError(404, 'NOT_FOUND', `no backups of database ${name}`);
      return { data: { database_name: name, histories: rows.map(ref) }, message: 'success' };
    },
  );

  app.get<{ Params: { id: string } }>('/:id/download', { schema: { response: errors } }, async (req, reply) => {
    const id = req.params.id;
    const row = BACKUP_ID.test(id) ? await store.byId(id) : undefined;
    if (!row) throw new ReceiverError(404, 'NOT_FOUND', `no backup with id ${JSON.stringify(id.slice(0, 80))}`);
    const file = path.join(storage, row.file_name);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch {
      throw new ReceiverError(404, 'FILE_MISSING', `the file of backup ${id} is no longer in the storage folder`);
    }
    const st = await fh.stat();
    void reply
      .header('content-type', 'application/zip')
      .header('content-length', st.size)
      .header('content-disposition', `attachment; filename="${row.file_name}"`)
      .header('x-content-sha256', row.sha256);
    return reply.send(fh.createReadStream());
  });

  app.post<{ Params: { db_name: string } }>(
    '/:db_name',
    {
      schema: {
        response: {
          200: {
            type: 'object',
            properties: {
              data: { type: 'object', properties: { id: { type: 'string' }, database_name: { type: 'string' }, file_name: { type: 'string' }, timestamp: { type: 'string' }, size: { type: 'number' }, sha256: { type: 'string' } } },
              message: { type: 'string' },
            },
          },
          ...errors,
        },
      },
    },
    async (req, reply) => {
      const name = checkDatabaseName(req.params.db_name);
      const declared = Number(req.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxSize + 1024 * 1024) {
        reply.header('connection', 'close');
        throw new ReceiverError(413, 'TOO_LARGE', `the upload is larger than the limit of ${maxSize} bytes`);
      }
      const row = await receive(req, reply, name);
      await applyRetention(name);
      return { data: { id: row.id, database_name: row.database_name, file_name: row.file_name, timestamp: row.timestamp, size: row.size, sha256: row.sha256 }, message: 'success' };
    },
  );

  async function receive(req: FastifyRequest, reply: FastifyReply, name: string): Promise<BackupRow> {
    if (!req.isMultipart()) throw new ReceiverError(400, 'BAD_INPUT', 'the request must be multipart/form-data with the archive in field "file"');
    const part = await req.file();
    if (!part) throw new ReceiverError(400, 'MISSING_FILE', 'the request has no file: send the archive in multipart field "file"');
    const drop = (e: ReceiverError): never => {
      part.file.resume();
      reply.header('connection', 'close');
      throw e;
    };
    if (part.fieldname !== 'file') drop(new ReceiverError(400, 'MISSING_FILE', `the archive must be in multipart field "file", not "${part.fieldname.slice(0, 64)}"`));
    const fileName = path.basename(part.filename ?? '');
    const parsed = parseArchiveName(part.filename ?? '');
    if (!parsed || fileName !== part.filename) {
      drop(new ReceiverError(400, 'BAD_FILE_NAME', `file name ${JSON.stringify((part.filename ?? '').slice(0, 200))} does not match {mysql|postgres}-YYYY-MM-DD-HH-mm-ss-${name}-{uuid}.sql.zip`));
    }
    if (parsed!.databaseName !== name) drop(new ReceiverError(400, 'BAD_FILE_NAME', `file ${fileName} belongs to database ${parsed!.databaseName}, not ${name}`));
    const final = path.join(storage, fileName);
    if ((await store.byFileName(fileName)) || fs.existsSync(final)) drop(new ReceiverError(409, 'DUPLICATE', `${fileName} was already received`));

    const temp = path.join(storage, `${TEMP_PREFIX}${randomUUID()}.tmp`);
    const hash = createHash('sha256');
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        size += chunk.length;
        cb(null, chunk);
      },
    });
    let linked = false;
    try {
      const out = fs.createWriteStream(temp, { flags: 'wx', mode: 0o600 });
      await pipeline(part.file, tap, out);
      if (part.file.truncated) {
        reply.header('connection', 'close');
        throw new ReceiverError(413, 'TOO_LARGE', `the archive is larger than the limit of ${maxSize} bytes`);
      }
      const fh = await fsp.open(temp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (!(await readableZip(temp))) throw new ReceiverError(400, 'NOT_A_ZIP', `${fileName} is not a readable zip archive`);
      try {
        await fsp.link(temp, final);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ReceiverError(409, 'DUPLICATE', `${fileName} was already received`);
        throw err;
      }
      linked = true;
      await fsyncDir(storage);
      const now = new Date();
      const row: BackupRow = { id: randomUUID(), database_name: name, file_name: fileName, timestamp: formatTimestamp(now), received_ms: now.getTime(), size, sha256: hash.digest('hex') };
      await store.add(row);
      req.log.info({ database: name, file: fileName, size }, 'archive received');
      return row;
    } catch (err) {
      if (linked) await fsp.rm(final, { force: true });
      if (err instanceof ReceiverError) throw err;
      if (part.file.destroyed && !part.file.readableEnded) throw new ReceiverError(400, 'UPLOAD_INTERRUPTED', 'the upload ended before the archive was complete');
      throw err;
    } finally {
      await fsp.rm(temp, { force: true });
    }
  }

  async function applyRetention(name: string): Promise<void> {
    if (!opts.keep || opts.keep < 1) return;
    const rows = await store.history(name);
    for (const r of rows.slice(opts.keep)) {
      await fsp.rm(path.join(storage, r.file_name), { force: true });
      await store.remove(r.id);
    }
  }

  return app;
}

function checkDatabaseName(name: string): string {
  if (!DATABASE_NAME.test(name)) throw new ReceiverError(400, 'BAD_DATABASE_NAME', `database name ${JSON.stringify(name.slice(0, 80))} is not allowed: use 1-64 letters, digits and _`);
  return name;
}

function send(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.status(status).send({ error: { code, message }, message });
}

export interface RunningReceiver {
  url: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

/** Builds and starts a receiver; `port: 0` picks a free port (see `url`). */
export async function startReceiver(opts: ReceiverOptions & { host?: string; port?: number }): Promise<RunningReceiver> {
  const app = await buildReceiver(opts);
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ host, port: opts.port ?? 8090 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${shown}:${port}`, app, close: () => app.close() };
}
