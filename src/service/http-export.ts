/**
 * HTTP export jobs: a plan whose source is a list of export endpoints makes one task per endpoint;
 * each response is streamed into the plan's repository as one file (`/ENDPOINT`), never held in
 * memory, and cut off with an error past the endpoint's size limit.
 */
import { Readable, Transform } from 'node:stream';
import os from 'node:os';
import { CairnError } from '../errors.js';
import { backupStream } from '../archiver/stdin.js';
import { forget, planTag, repositoryRef, withRepository } from './backup-plan.js';
import type { Plan } from './config.js';
import type { SourceTaskRunner } from './jobs.js';

/** Responses larger than this fail unless the endpoint allows more. */
export const DEFAULT_MAX_BYTES = 1024 * 1024 * 1024;

function limit(maxBytes: number, onBytes: (n: number) => void): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      onBytes(seen);
      if (seen > maxBytes) cb(new CairnError('BAD_INPUT', `the response is larger than the limit of ${maxBytes} bytes`));
      else cb(null, chunk);
    },
  });
}

/** Runs one endpoint of an http source into the plan's repository. */
export const exportTask: SourceTaskRunner = async (plan: Plan, task, ctx) => {
  const source = plan.sources.find((s) => s.kind === 'http');
  const endpoint = source?.kind === 'http' ? source.endpoints.find((e) => e.name === task.name) : undefined;
  if (!endpoint) throw new CairnError('BAD_INPUT', `the plan has no endpoint ${task.name}`);
  if (plan.target.kind !== 'repository') throw new CairnError('BAD_INPUT', 'http sources write to repository targets');
  const res = await fetch(endpoint.url, { method: endpoint.method, headers: endpoint.headers, signal: ctx.signal });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    // A server error may pass; a client error will not.
    throw new CairnError(res.status >= 500 || res.status === 429 ? 'BACKEND_UNAVAILABLE' : 'BAD_INPUT', `${endpoint.name}: ${endpoint.method} answered ${res.status} ${res.statusText}`);
  }
  const ref = repositoryRef(plan.target, ctx.defaultRepository);
  return withRepository(ref, plan.compression, async (repo, pool, release) => {
    const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>).pipe(limit(endpoint.maxBytes ?? DEFAULT_MAX_BYTES, (n) => ctx.onProgress({ files: 0, bytes: n, current: endpoint.name })));
    const result = await backupStream(repo, pool, body, endpoint.name, { host: os.hostname(), tags: [...(plan.tags ?? []), planTag(plan.name), `endpoint:${endpoint.name}`], signal: ctx.signal });
    await release();
    const forgotten = plan.retention ? await forget(repo, plan, ref.location, ctx.signal) : [];
    return { files: 1, bytes: result.summary.total_bytes_processed, result: { snapshot: result.snapshotId, forgotten } };
  }, ctx.signal);
};
