/** `/healthz` (no token), `/metrics` (Prometheus) and `/api/v1/openapi.json`, built from the routes' own schemas. */
import type { FastifyPluginAsync } from 'fastify';
import { PROGRAM_VERSION } from '../../repository/snapshot.js';
import type { Daemon } from '../daemon.js';

export interface RouteDoc {
  method: string;
  url: string;
  schema?: { summary?: string; params?: unknown; querystring?: unknown; body?: unknown; response?: Record<string, unknown> };
}

/** An OpenAPI 3.1 document of the registered routes. */
export function openApi(routes: RouteDoc[]): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const p = r.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const s = r.schema ?? {};
    const parameters: unknown[] = [];
    for (const [where, schema] of [['path', s.params], ['query', s.querystring]] as const) {
      const props = (schema as { properties?: Record<string, unknown>; required?: string[] } | undefined)?.properties ?? {};
      const required = (schema as { required?: string[] } | undefined)?.required ?? [];
      for (const [name, sch] of Object.entries(props)) parameters.push({ name, in: where, required: where === 'path' || required.includes(name), schema: sch });
    }
    const responses = Object.fromEntries(
      Object.entries(s.response ?? { 200: {} }).map(([code, schema]) => [code, { description: code.startsWith('2') ? 'success' : 'error', content: { [code === '200' && p.endsWith('/metrics') ? 'text/plain' : 'application/json']: { schema } } }]),
    );
    paths[p] ??= {};
    paths[p][r.method.toLowerCase()] = {
      summary: s.summary,
      ...(parameters.length > 0 && { parameters }),
      ...(s.body !== undefined && { requestBody: { required: true, content: { 'application/json': { schema: s.body } } } }),
      responses,
      ...(p === '/healthz' ? { security: [] } : {}),
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Cairn daemon API', version: PROGRAM_VERSION.replace('cairn ', '') },
    components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'the token in DATA_DIR/api-token' } } },
    security: [{ bearer: [] }],
    paths,
  };
}

export function systemPlugin(daemon: Daemon, routes: RouteDoc[]): FastifyPluginAsync {
  return async (app) => {
    app.get(
      '/healthz',
      { schema: { summary: 'Liveness (no token needed)', response: { 200: { type: 'object', properties: { status: { type: 'string' }, version: { type: 'string' }, uptimeSeconds: { type: 'number' }, jobsRunning: { type: 'integer' } } } } } },
      async () => ({ status: 'ok', version: PROGRAM_VERSION.replace('cairn ', ''), uptimeSeconds: Math.round((Date.now() - daemon.startedAt) / 1000), jobsRunning: daemon.runner.runningJobs().length }),
    );

    app.get('/metrics', { schema: { summary: 'Prometheus metrics', response: { 200: { type: 'string' } } } }, async (_req, res) => {
      daemon.metrics.running.set(daemon.runner.runningJobs().length);
      const recs = await daemon.catalog.listPlans();
      daemon.metrics.plans.set({ state: 'active' }, recs.filter((r) => !r.paused).length);
      daemon.metrics.plans.set({ state: 'paused' }, recs.filter((r) => r.paused).length);
      const pending = await daemon.catalog.journalCounts();
      for (const r of recs) await daemon.planStatus(r, pending);
      res.header('content-type', daemon.metrics.registry.contentType);
      return daemon.metrics.registry.metrics();
    });

    app.get('/api/v1/openapi.json', { schema: { summary: 'This API as OpenAPI 3.1', response: { 200: { type: 'object', additionalProperties: true } } } }, async () => openApi(routes));
  };
}
