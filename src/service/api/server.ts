/**
 * The daemon's HTTP API: fastify, with a plugin per resource. Every route carries JSON schemas;
 * every error is `{"error":{"code","message"}}`; everything but `/healthz` needs the bearer token.
 */
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { CairnError, type ErrorCode } from '../../errors.js';
import type { Daemon } from '../daemon.js';
import { sameSecret } from '../secrets.js';
import { plansPlugin } from './plans.js';
import { jobsPlugin } from './jobs.js';
import { snapshotsPlugin } from './snapshots.js';
import { systemPlugin, type RouteDoc } from './system.js';
import { exportPlugin } from './export.js';

const STATUS: Partial<Record<ErrorCode, number>> = {
  BAD_INPUT: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  REPO_NOT_FOUND: 404,
  CONFLICT: 409,
  LOCKED: 409,
  BACKEND_UNAVAILABLE: 503,
};

const FASTIFY_CODES: Record<number, ErrorCode> = { 400: 'BAD_INPUT', 401: 'UNAUTHORIZED', 404: 'NOT_FOUND', 405: 'BAD_INPUT', 409: 'CONFLICT', 413: 'BAD_INPUT', 415: 'BAD_INPUT' };

/** The error envelope, as a schema for the docs. */
export const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
  required: ['error'],
} as const;

function describeFastifyError(err: FastifyError): string {
  if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (err instanceof SyntaxError && /JSON/.test(err.message))) return `the request body is not valid JSON: ${err.message}`;
  if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return 'the request body is empty; send a JSON object';
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return 'send the request body as application/json';
  if (err.validation) return `invalid request: ${err.message}`;
  return err.message;
}

export async function buildApi(daemon: Daemon): Promise<FastifyInstance> {
  const app = Fastify({
    // Requests are logged at info level by fastify: too chatty for a daemon polled by monitors.
    loggerInstance: daemon.log.child({ component: 'api' }, { level: 'warn' }) as unknown as FastifyBaseLogger,
    forceCloseConnections: true,
    bodyLimit: 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false, allowUnionTypes: true } },
  });
  const routes: RouteDoc[] = [];
  app.addHook('onRoute', (r) => {
    if (r.method === 'HEAD') return;
    for (const m of Array.isArray(r.method) ? r.method : [r.method]) routes.push({ method: m, url: r.url, schema: r.schema as RouteDoc['schema'] });
  });

  app.addHook('onRequest', async (req) => {
    const url = req.url.split('?')[0];
    if (url === '/healthz') return;
    const header = req.headers.authorization;
    if (!header) throw new CairnError('UNAUTHORIZED', 'missing API token: send "Authorization: Bearer TOKEN" (the token is in DATA_DIR/api-token)');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m || !sameSecret(m[1], daemon.token)) throw new CairnError('UNAUTHORIZED', 'wrong API token: use the token in DATA_DIR/api-token');
  });

  app.setErrorHandler((err: FastifyError | CairnError, req, reply) => {
    if (err instanceof CairnError) {
      const status = STATUS[err.code] ?? 500;
      if (status >= 500) req.log.error({ code: err.code, error: err.message }, 'request failed');
      return reply.code(status).send({ error: { code: err.code, message: err.message } });
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      req.log.error({ error: err.message }, 'request failed');
      return reply.code(status).send({ error: { code: 'INTERNAL', message: `internal error: ${err.message}` } });
    }
    return reply.code(status).send({ error: { code: FASTIFY_CODES[status] ?? 'BAD_INPUT', message: describeFastifyError(err) } });
  });
  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0]}; see /api/v1/openapi.json` } });
  });

  await app.register(systemPlugin(daemon, routes));
  await app.register(plansPlugin(daemon), { prefix: '/api/v1' });
  await app.register(jobsPlugin(daemon), { prefix: '/api/v1' });
  await app.register(snapshotsPlugin(daemon), { prefix: '/api/v1' });
  await app.register(exportPlugin(daemon));
  return app;
}
