/**
 * The receiver's four routes, with the response shapes existing clients expect:
 * `GET /`, `GET /:db_name`, `POST /:db_name` (multipart, the zip in field `file`) and `GET /:id/download`.
 */
import fs from 'node:fs/promises';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { CairnError } from '../errors.js';
import { checkArchiveName, checkDatabaseName, parseBackupId } from './names.js';
import { conflict, type BackupRecord, type ReceiverStore } from './store.js';
import { checkZip, receiveToTemp, tooLarge } from './upload.js';

export interface ReceiverRoutesOptions {
  store: ReceiverStore;
  /** Largest archive accepted, in bytes. */
  maxSize: number;
  /** Archives kept per database after each upload; all when undefined. */
  keep?: number;
}

/** How to send an archive; ends every refusal of a request's form. */
export const SEND_MULTIPART = 'send multipart/form-data with the zip archive in the field "file"';

/** Room for the multipart boundaries and part headers around the file in a request body. */
const MULTIPART_OVERHEAD = 64 * 1024;

const backupRef = {
  type: 'object',
  properties: { id: { type: 'integer' }, file_name: { type: 'string' }, timestamp: { type: 'string' } },
  required: ['id', 'file_name', 'timestamp'],
} as const;

function success(data: object) {
  return { type: 'object', properties: { data, message: { type: 'string' } }, required: ['data', 'message'] } as const;
}

const latestSchema = success({
  type: 'array',
  items: { type: 'object', properties: { database_name: { type: 'string' }, latest_backup: backupRef }, required: ['database_name', 'latest_backup'] },
});
const historySchema = success({
  type: 'object',
  properties: { database_name: { type: 'string' }, histories: { type: 'array', items: backupRef } },
  required: ['database_name', 'histories'],
});
const uploadedSchema = success({
  type: 'object',
  properties: {
    id: { type: 'integer' },
    database_name: { type: 'string' },
    file_name: { type: 'string' },
    timestamp: { type: 'string' },
    sha256: { type: 'string' },
    size: { type: 'integer' },
  },
  required: ['id', 'database_name', 'file_name', 'timestamp', 'sha256', 'size'],
});

function ref(r: BackupRecord) {
  return { id: r.id, file_name: r.file_name, timestamp: r.timestamp };
}

type DbParams = { Params: { db_name: string } };
type IdParams = { Params: { id: string } };

export async function receiverRoutes(app: FastifyInstance, opts: ReceiverRoutesOptions): Promise<void> {
  const { store, maxSize, keep } = opts;
  await app.register(multipart, {
    // Names are checked whole: busboy would otherwise cut "../x" down to "x" before we see it.
    preservePath: true,
    limits: { fileSize: maxSize + 1, files: 1, fields: 16, fieldSize: 64 * 1024, parts: 32, headerPairs: 32 },
  });

  app.get('/', { schema: { response: { 200: latestSchema } } }, async () => {
    const latest = await store.latest();
    return { data: latest.map((r) => ({ database_name: r.database_name, latest_backup: ref(r) })), message: 'success' };
  });

  app.get<DbParams>('/:db_name', { schema: { response: { 200: historySchema } } }, async (req) => {
    const database = checkDatabaseName(req.params.db_name);
    const histories = await store.history(database);
    if (histories.length === 0) throw new CairnError('NOT_FOUND', `no backups of database ${database} have been received`);
    return { data: { database_name: database, histories: histories.map(ref) }, message: 'success' };
  });

  app.post<DbParams>(
    '/:db_name',
    {
      schema: { response: { 200: uploadedSchema } },
      // Refuse a body that announces itself as too large before reading any of it.
      onRequest: async (req: FastifyRequest) => {
        const length = Number(req.headers['content-length']);
        if (length > maxSize + MULTIPART_OVERHEAD) throw tooLarge(maxSize);
      },
    },
    async (req) => {
      const database = checkDatabaseName(req.params.db_name);
      if (!req.isMultipart()) throw new CairnError('BAD_INPUT', `not a multipart request: ${SEND_MULTIPART}`);
      const part = await req.file().catch((err: unknown) => {
        throw malformed(err);
      });
      if (!part) throw new CairnError('BAD_INPUT', `the request has no file field: ${SEND_MULTIPART}`);
      if (part.fieldname !== 'file') throw new CairnError('BAD_INPUT', `unexpected file field ${JSON.stringify(part.fieldname)}: ${SEND_MULTIPART}`);
      const fileName = checkArchiveName(part.filename, database);
      if (await store.has(fileName)) throw conflict(fileName);

      const received = await receiveToTemp(part.file, store.storage, maxSize).catch((err: unknown) => {
        throw (err as NodeJS.ErrnoException).syscall === undefined ? malformed(err) : err;
      });
      let record: BackupRecord;
      try {
        await checkZip(received.tempPath);
        record = await store.add(received.tempPath, { database_name: database, file_name: fileName, size: received.size, sha256: received.sha256 });
      } finally {
        await fs.rm(received.tempPath, { force: true });
      }
      req.log.info({ id: record.id, database_name: database, file_name: fileName, size: record.size, sha256: record.sha256 }, 'archive stored');
      if (keep !== undefined) {
        try {
          const removed = await store.retain(database, keep);
          for (const r of removed) req.log.info({ id: r.id, database_name: database, file_name: r.file_name }, 'archive removed by retention');
        } catch (err) {
          // The upload itself succeeded; the next upload retries what retention could not remove.
          req.log.error({ err, database_name: database }, 'retention failed');
        }
      }
      return { data: record, message: 'success' };
    },
  );

  app.get<IdParams>('/:id/download', async (req, reply) => {
    const id = parseBackupId(req.params.id);
    const record = await store.find(id);
    if (!record) throw new CairnError('NOT_FOUND', `no backup with id ${id}`);
    let fh: fs.FileHandle;
    try {
      fh = await fs.open(store.pathOf(record.file_name), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new CairnError('NOT_FOUND', `the file of backup ${id} (${record.file_name}) is missing from the storage folder`);
      throw err;
    }
    const { size } = await fh.stat();
    return reply
      .header('content-type', 'application/zip')
      .header('content-length', size)
      .header('content-disposition', `attachment; filename="${record.file_name}"`)
      .header('content-digest', `sha-256=:${Buffer.from(record.sha256, 'hex').toString('base64')}:`)
      .send(fh.createReadStream());
  });
}

/** An error of the multipart parser, as the refusal of a malformed body; other errors pass through. */
function malformed(err: unknown): unknown {
  if (err instanceof CairnError || typeof (err as { statusCode?: unknown }).statusCode === 'number') return err;
  return new CairnError('BAD_INPUT', `malformed multipart body: ${(err as Error).message}`);
}
