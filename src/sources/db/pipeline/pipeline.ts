import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CairnError } from '../../../errors.js';
import { withCredentials } from '../credentials.js';
import { engineFor } from '../engines.js';
import { locationOf, type DumpEntry } from './config.js';
import { dumpFileName } from './names.js';
import { BoundedQueue, runStage } from '../../../util/queue.js';
import { uploadArchive } from './upload.js';
import { zipOneFile } from './zip.js';

export type DumpStage = 'dump' | 'zip' | 'upload';

/** What happened to one database; `status` is `uploaded`, `saved` (kept in --out without upload) or `failed`. */
export interface DumpResult {
  database: string;
  engine: 'mysql' | 'postgres';
  host: string;
  status: 'uploaded' | 'saved' | 'failed';
  /** The stage that failed. */
  failed_stage?: DumpStage;
  error?: string;
  file: string;
  archive: string;
  dump_bytes: number;
  zip_bytes: number;
  upload_attempts: number;
  seconds: number;
  /** The receiver's answer (`data`), when it sent JSON. */
  receiver?: unknown;
}

export interface DumpEvent {
  database: string;
  stage: DumpStage;
  state: 'started' | 'done' | 'retry' | 'failed';
  bytes?: number;
  seconds?: number;
  message?: string;
}

export interface DumpPipelineOptions {
  /** Receiver base URL: each archive is POSTed to `{upload}/{database}`. */
  upload?: string;
  /** Folder that keeps the archives; without it they are removed after the upload. */
  outDir?: string;
  /** Databases in flight per stage. */
  concurrency?: number;
  token?: string;
  retries?: number;
  retryBaseDelayMs?: number;
  /** Where dumps are written while they wait for the zip stage (a private folder is made inside). */
  tempDir?: string;
  signal?: AbortSignal;
  onEvent?: (e: DumpEvent) => void;
}

interface Job {
  entry: DumpEntry;
  result: DumpResult;
  started: number;
  sqlPath?: string;
  zipPath?: string;
}

/**
 * `db-dump`: dump → zip → upload as three stages joined by bounded queues, `concurrency` databases
 * in flight in each, so one database uploads while the next is zipped and a third is dumped. A
 * database that fails at any stage is recorded and the others go on. Temporary files are removed
 * in every case (the private work folder goes last); archives stay only in `outDir`.
 */
export async function runDumpPipeline(entries: DumpEntry[], opts: DumpPipelineOptions): Promise<DumpResult[]> {
  if (!opts.upload && !opts.outDir) throw new CairnError('BAD_INPUT', 'nothing to do with the dumps: give --upload URL, --out DIR or both');
  const n = Math.max(1, opts.concurrency ?? 3);
  const emit = (e: DumpEvent): void => opts.onEvent?.(e);
  if (opts.outDir) await fs.mkdir(opts.outDir, { recursive: true });
  const work = await fs.mkdtemp(path.join(opts.tempDir ?? os.tmpdir(), 'cairn-db-dump-'));
  await fs.chmod(work, 0o700);

  const jobs: Job[] = entries.map((entry) => {
    const file = dumpFileName(entry.engine, entry.database_name, new Date());
    return {
      entry,
      started: 0,
      result: { database: entry.database_name, engine: entry.engine, host: entry.db_host, status: 'failed', file, archive: `${file}.zip`, dump_bytes: 0, zip_bytes: 0, upload_attempts: 0, seconds: 0 },
    };
  });

  const fail = async (job: Job, stage: DumpStage, err: unknown): Promise<null> => {
    job.result.failed_stage = stage;
    job.result.error = err instanceof CairnError ? err.message : (err as Error).message;
    job.result.seconds = round((Date.now() - job.started) / 1000);
    emit({ database: job.result.database, stage, state: 'failed', message: job.result.error });
    await removeFiles(job);
    return null;
  };
  const finish = async (job: Job, status: DumpResult['status']): Promise<void> => {
    job.result.status = status;
    job.result.seconds = round((Date.now() - job.started) / 1000);
    if (job.sqlPath) await fs.rm(job.sqlPath, { force: true });
    if (!opts.outDir && job.zipPath) await fs.rm(job.zipPath, { force: true });
  };

  const dump = async (job: Job): Promise<Job | null> => {
    job.started = Date.now();
    // Named when the dump starts, so the time in the name is the time of the data.
    job.result.file = dumpFileName(job.entry.engine, job.entry.database_name, new Date(job.started));
    job.result.archive = `${job.result.file}.zip`;
    emit({ database: job.result.database, stage: 'dump', state: 'started' });
    const sqlPath = path.join(work, job.result.file);
    job.sqlPath = sqlPath;
    try {
      const loc = locationOf(job.entry);
      await withCredentials(async (cred) => {
        await pipeline(Readable.from(engineFor(loc.engine).dump(loc, cred, { signal: opts.signal })), createWriteStream(sqlPath, { mode: 0o600 }));
      }, work);
      job.result.dump_bytes = (await fs.stat(sqlPath)).size;
      emit({ database: job.result.database, stage: 'dump', state: 'done', bytes: job.result.dump_bytes, seconds: round((Date.now() - job.started) / 1000) });
      return job;
    } catch (err) {
      return fail(job, 'dump', err);
    }
  };

  const zip = async (job: Job): Promise<Job | null> => {
    const t = Date.now();
    emit({ database: job.result.database, stage: 'zip', state: 'started' });
    const dest = path.join(opts.outDir ?? work, job.result.archive);
    const partial = `${dest}.partial`;
    job.zipPath = partial;
    try {
      await zipOneFile(job.sqlPath!, partial, job.result.file, opts.signal);
      await fs.rename(partial, dest);
      job.zipPath = dest;
      await fs.rm(job.sqlPath!, { force: true });
      job.sqlPath = undefined;
      job.result.zip_bytes = (await fs.stat(dest)).size;
      emit({ database: job.result.database, stage: 'zip', state: 'done', bytes: job.result.zip_bytes, seconds: round((Date.now() - t) / 1000) });
      if (!opts.upload) {
        await finish(job, 'saved');
        return null;
      }
      return job;
    } catch (err) {
      return fail(job, 'zip', err);
    }
  };

  const upload = async (job: Job): Promise<null> => {
    const t = Date.now();
    emit({ database: job.result.database, stage: 'upload', state: 'started', bytes: job.result.zip_bytes });
    try {
      const r = await uploadArchive(opts.upload!, job.result.database, job.zipPath!, {
        token: opts.token,
        retries: opts.retries,
        baseDelayMs: opts.retryBaseDelayMs,
        signal: opts.signal,
        onRetry: (attempt, reason) => emit({ database: job.result.database, stage: 'upload', state: 'retry', message: `attempt ${attempt} failed (${reason}); retrying` }),
      });
      job.result.upload_attempts = r.attempts;
      job.result.receiver = (r.body as { data?: unknown })?.data ?? r.body;
      emit({ database: job.result.database, stage: 'upload', state: 'done', bytes: job.result.zip_bytes, seconds: round((Date.now() - t) / 1000) });
      await finish(job, 'uploaded');
    } catch (err) {
      await fail(job, 'upload', err);
    }
    return null;
  };

  const queued = new BoundedQueue<Job>(jobs.length);
  const toZip = new BoundedQueue<Job>(n);
  const toUpload = new BoundedQueue<Job>(n);
  try {
    for (const job of jobs) await queued.push(job);
    queued.close();
    await Promise.all([runStage(queued, toZip, n, dump), runStage(toZip, toUpload, n, zip), runStage(toUpload, null, n, upload)]);
  } finally {
    await Promise.all(jobs.map(removeFiles));
    await fs.rm(work, { recursive: true, force: true });
  }
  return jobs.map((j) => j.result);

  async function removeFiles(job: Job): Promise<void> {
    if (job.sqlPath) await fs.rm(job.sqlPath, { force: true });
    // An archive in --out stays once it is complete; a partial one never does.
    if (job.zipPath && (!opts.outDir || job.zipPath.endsWith('.partial'))) await fs.rm(job.zipPath, { force: true });
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
