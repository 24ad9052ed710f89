/**
 * A fault-injecting stand-in for `cairn receiver`, for the upload client's error handling (a 503 cannot
 * be had from the real receiver on demand; everything else is tested against the real one): POST /:db_name takes multipart/form-data with
 * the zip in field `file`, checks the field and the file name against the pattern for that
 * database, stores the file and answers as the receiver does; GET / lists the latest per database
 * and GET /:id/download streams a stored zip. `token` requires that bearer token, as
 * `cairn receiver --token-file` does. For the client's error handling, `failFirst` answers 503 to
 * the first upload of the databases named, and `answer` refuses every upload with that status.
 */
import { randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import Fastify from 'fastify';
import multipart from '@fastify/multipart';
import { archiveNamePattern } from '../../src/sources/db/pipeline/names.js';

export interface StandInUpload {
  id: string;
  database_name: string;
  file_name: string;
  path: string;
  authorization?: string;
}

export interface StandInReceiver {
  url: string;
  uploads: StandInUpload[];
  /** Every request, including refused ones, as `status database`. */
  log: string[];
  close(): Promise<void>;
}

export async function startStandInReceiver(storage: string, opts: { token?: string; failFirst?: string[]; answer?: number } = {}): Promise<StandInReceiver> {
  const app = Fastify();
  await app.register(multipart, { limits: { fileSize: 512 * 1024 * 1024, files: 1 } });
  const uploads: StandInUpload[] = [];
  const log: string[] = [];
  const failed = new Set<string>();
  app.post<{ Params: { db: string } }>('/:db', async (req, reply) => {
    const db = req.params.db;
    const refuse = (status: number, message: string) => {
      log.push(`${status} ${db}`);
      return reply.code(status).send({ error: { code: 'BAD_INPUT', message } });
    };
    if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`) return refuse(401, 'bad token');
    if (opts.answer) return refuse(opts.answer, 'told to refuse');
    if (opts.failFirst?.includes(db) && !failed.has(db)) {
      failed.add(db);
      return refuse(503, 'try again later');
    }
    const part = await req.file();
    if (!part) return refuse(400, 'no file');
    if (part.fieldname !== 'file') return refuse(400, `field ${part.fieldname}, expected file`);
    if (!archiveNamePattern(db).test(part.filename)) return refuse(400, `file name ${part.filename} does not fit ${db}`);
    const dest = path.join(storage, part.filename);
    await pipeline(part.file, createWriteStream(dest));
    const id = randomUUID();
    uploads.push({ id, database_name: db, file_name: part.filename, path: dest, authorization: req.headers.authorization });
    log.push(`200 ${db}`);
    return { data: { id, database_name: db, file_name: part.filename, timestamp: new Date().toISOString() }, message: 'success' };
  });
  app.get('/', async () => {
    const latest = new Map<string, StandInUpload>();
    for (const u of uploads) latest.set(u.database_name, u);
    return { data: [...latest.values()].map((u) => ({ database_name: u.database_name, latest_backup: { id: u.id, file_name: u.file_name } })), message: 'success' };
  });
  app.get<{ Params: { id: string } }>('/:id/download', async (req, reply) => {
    const u = uploads.find((x) => x.id === req.params.id);
    if (!u) return reply.code(404).send({ error: { code: 'NOT_FOUND', message: 'unknown id' } });
    return reply.type('application/zip').send(createReadStream(u.path));
  });
  await fs.mkdir(storage, { recursive: true });
  const address = await app.listen({ host: '127.0.0.1', port: 0 });
  return { url: address, uploads, log, close: () => app.close() };
}
