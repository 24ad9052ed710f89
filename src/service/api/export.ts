/**
 * Routes for existing export clients: `POST /backup {"userId","siteId"}` starts the export plan of
 * a site (the plan whose `site` is that id) and answers 202 with the pending job;
 * `GET /backup/:jobId` returns the job with its tasks.
 */
import type { FastifyPluginAsync } from 'fastify';
import { CairnError } from '../../errors.js';
import type { JobRecord } from '../catalog.js';
import type { Daemon } from '../daemon.js';
import { errors, idParams, jobSchema } from './schemas.js';

const exportJobSchema = { ...jobSchema, properties: { ...jobSchema.properties, status: { type: 'string' } } };
const withStatus = (j: JobRecord) => ({ ...j, status: j.state });

export function exportPlugin(daemon: Daemon): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: { userId: string | number; siteId: string | number } }>(
      '/backup',
      {
        schema: {
          summary: "Start a site's export job",
          body: { type: 'object', properties: { userId: { type: ['string', 'integer'] }, siteId: { type: ['string', 'integer'] } }, required: ['userId', 'siteId'], additionalProperties: false },
          response: { 202: exportJobSchema, ...errors(400, 401, 404) },
        },
      },
      async (req, res) => {
        const siteId = String(req.body.siteId);
        const plan = (await daemon.catalog.listPlans()).find((r) => r.plan.site === siteId);
        if (!plan) throw new CairnError('NOT_FOUND', `no export plan for site ${siteId}: add a plan with "site": "${siteId}" and an http source`);
        const job = await daemon.runner.enqueue(plan.plan, 'export', { meta: { userId: String(req.body.userId), siteId } });
        return res.code(202).send(withStatus(job));
      },
    );

    app.get<{ Params: { id: string } }>('/backup/:id', { schema: { summary: 'An export job with its tasks', params: idParams, response: { 200: exportJobSchema, ...errors(401, 404) } } }, async (req) => {
      const job = await daemon.catalog.getJob(req.params.id);
      if (!job) throw new CairnError('NOT_FOUND', `no job ${req.params.id}`);
      return withStatus(job);
    });
  };
}
