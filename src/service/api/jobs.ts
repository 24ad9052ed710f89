/** `/api/v1/jobs`: list with filters, start ad-hoc jobs, show, cancel, and follow a job's events (SSE). */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { CairnError } from '../../errors.js';
import { JOB_KINDS, JOB_STATES, type JobEvent, type JobKind, type JobState } from '../catalog.js';
import { PLAN_NAME } from '../config.js';
import type { Daemon } from '../daemon.js';
import { errors, idParams, jobSchema, planBodySchema, zodBody } from './schemas.js';

const AdhocBody = z.strictObject({ plan: z.union([z.string().regex(PLAN_NAME, 'name a plan, or give one inline'), z.record(z.string(), z.unknown())]) });

const FINAL: JobState[] = ['done', 'failed', 'cancelled'];

export function jobsPlugin(daemon: Daemon): FastifyPluginAsync {
  const find = async (id: string) => {
    const job = await daemon.catalog.getJob(id);
    if (!job) throw new CairnError('NOT_FOUND', `no job ${id}`);
    return job;
  };
  return async (app) => {
    app.get<{ Querystring: { plan?: string; kind?: JobKind; state?: JobState; since?: string; limit?: number } }>(
      '/jobs',
      {
        schema: {
          summary: 'List jobs, newest first',
          querystring: {
            type: 'object',
            properties: { plan: { type: 'string' }, kind: { type: 'string', enum: JOB_KINDS }, state: { type: 'string', enum: JOB_STATES }, since: { type: 'string', format: 'date-time' }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
            additionalProperties: false,
          },
          response: { 200: { type: 'object', properties: { jobs: { type: 'array', items: jobSchema } } }, ...errors(400, 401) },
        },
      },
      async (req) => {
        const q = req.query;
        return { jobs: await daemon.catalog.listJobs({ plan: q.plan, kind: q.kind, state: q.state, since: q.since ? Date.parse(q.since) : undefined, limit: q.limit }) };
      },
    );

    app.post<{ Body: { plan: string | Record<string, unknown> } }>(
      '/jobs',
      {
        schema: {
          summary: 'Start a job: a stored plan by name, or an ad-hoc plan given inline',
          body: { type: 'object', properties: { plan: { anyOf: [{ type: 'string' }, planBodySchema] } }, required: ['plan'] },
          response: { 202: jobSchema, ...errors(400, 401, 404, 409) },
        },
        validatorCompiler: zodBody(AdhocBody, 'job'),
      },
      async (req, res) => {
        const plan = req.body.plan;
        const job = typeof plan === 'string' ? await daemon.runPlan(plan, 'api') : await daemon.runAdhoc(plan);
        return res.code(202).send(job);
      },
    );

    app.get<{ Params: { id: string } }>('/jobs/:id', { schema: { summary: 'Show a job with its tasks', params: idParams, response: { 200: jobSchema, ...errors(401, 404) } } }, async (req) => find(req.params.id));

    app.post<{ Params: { id: string } }>('/jobs/:id/cancel', { schema: { summary: 'Cancel a pending or running job', params: idParams, response: { 200: jobSchema, ...errors(401, 404, 409) } } }, async (req) => daemon.runner.cancel(req.params.id));

    app.get<{ Params: { id: string } }>(
      '/jobs/:id/events',
      { schema: { summary: 'Follow a job: server-sent events `state`, `task`, `progress` and `log`; the stream ends with the final state', params: idParams, response: { 200: { type: 'string', description: 'text/event-stream' }, ...errors(401, 404) } } },
      async (req, res) => {
        const job = await find(req.params.id);
        const after = Number(req.headers['last-event-id'] ?? 0) || 0;
        res.hijack();
        const raw = res.raw;
        raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
        let lastSeq = after;
        let closed = false;
        const send = (e: JobEvent) => {
          if (closed) return;
          if (e.seq > 0) {
            if (e.seq <= lastSeq) return;
            lastSeq = e.seq;
          }
          raw.write(`${e.seq > 0 ? `id: ${e.seq}\n` : ''}event: ${e.type}\ndata: ${JSON.stringify({ job: job.id, at: e.at, ...e.data })}\n\n`);
          if (e.type === 'state' && FINAL.includes(e.data.state as JobState)) close();
        };
        const buffered: JobEvent[] = [];
        let live = false;
        const onEvent = (jobId: string, e: JobEvent) => {
          if (jobId !== job.id) return;
          if (live) send(e);
          else buffered.push(e);
        };
        const keepAlive = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
        const close = () => {
          if (closed) return;
          closed = true;
          clearInterval(keepAlive);
          daemon.runner.off('event', onEvent);
          raw.end();
        };
        raw.on('close', close);
        daemon.runner.on('event', onEvent);
        for (const e of await daemon.catalog.listEvents(job.id, after)) send(e);
        live = true;
        for (const e of buffered) send(e);
        const now = await daemon.catalog.getJob(job.id);
        if (now && FINAL.includes(now.state)) close();
      },
    );
  };
}
