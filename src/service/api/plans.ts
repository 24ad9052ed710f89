/** `/api/v1/plans`: list, add, show, change, remove, run, pause and resume plans. */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { CairnError } from '../../errors.js';
import { CheckOptions, PlanInput } from '../config.js';
import type { Daemon } from '../daemon.js';
import type { PlanRecord } from '../catalog.js';
import { errors, jobSchema, nameParams, objectBody, planBodySchema, planReplySchema, zodBody } from './schemas.js';

const CheckBody = z.strictObject({ readData: CheckOptions.shape.readData.optional() }).nullish();

export function plansPlugin(daemon: Daemon): FastifyPluginAsync {
  const reply = async (rec: PlanRecord) => ({ plan: rec.plan, status: await daemon.planStatus(rec) });
  const find = async (name: string) => {
    const rec = await daemon.catalog.getPlan(name);
    if (!rec) throw new CairnError('NOT_FOUND', `no plan named ${name}`);
    return rec;
  };
  return async (app) => {
    app.get('/plans', { schema: { summary: 'List plans with their status', response: { 200: { type: 'object', properties: { plans: { type: 'array', items: planReplySchema } } }, ...errors(401) } } }, async () => {
      const pending = await daemon.catalog.journalCounts();
      const recs = await daemon.catalog.listPlans();
      return { plans: await Promise.all(recs.map(async (r) => ({ plan: r.plan, status: await daemon.planStatus(r, pending) }))) };
    });

    app.post<{ Body: unknown }>(
      '/plans',
      { schema: { summary: 'Add a plan', body: planBodySchema, response: { 201: planReplySchema, ...errors(400, 401, 409) } }, validatorCompiler: zodBody(PlanInput, 'plan') },
      async (req, res) => {
        const rec = await daemon.addPlan(req.body);
        return res.code(201).send(await reply(rec));
      },
    );

    app.get<{ Params: { name: string } }>('/plans/:name', { schema: { summary: 'Show a plan and its status', params: nameParams, response: { 200: planReplySchema, ...errors(401, 404) } } }, async (req) => reply(await find(req.params.name)));

    app.put<{ Params: { name: string }; Body: unknown }>(
      '/plans/:name',
      { schema: { summary: 'Replace a plan', params: nameParams, body: planBodySchema, response: { 200: planReplySchema, ...errors(400, 401, 404) } }, validatorCompiler: objectBody('plan') },
      async (req) => reply(await daemon.replacePlan(req.params.name, req.body)),
    );

    app.delete<{ Params: { name: string } }>('/plans/:name', { schema: { summary: 'Remove a plan (its snapshots stay)', params: nameParams, response: { 204: { type: 'null' }, ...errors(401, 404) } } }, async (req, res) => {
      await daemon.removePlan(req.params.name);
      return res.code(204).send();
    });

    app.post<{ Params: { name: string } }>('/plans/:name/run', { schema: { summary: 'Run a plan now', params: nameParams, response: { 202: jobSchema, ...errors(401, 404, 409) } } }, async (req, res) => {
      return res.code(202).send(await daemon.runPlan(req.params.name));
    });

    app.post<{ Params: { name: string }; Body: { readData?: boolean | string } | null | undefined }>(
      '/plans/:name/check',
      {
        schema: {
          summary: "Check a plan's repository now: the structure, and pack contents as `readData` says (the plan's check.readData when left out)",
          params: nameParams,
          body: { type: ['object', 'null'], properties: { readData: { anyOf: [{ type: 'boolean' }, { type: 'string' }] } } },
          response: { 202: jobSchema, ...errors(400, 401, 404, 409) },
        },
        validatorCompiler: zodBody(CheckBody, 'check'),
      },
      async (req, res) => res.code(202).send(await daemon.runCheck(req.params.name, 'api', req.body?.readData)),
    );

    for (const [verb, paused] of [['pause', true], ['resume', false]] as const) {
      app.post<{ Params: { name: string } }>(`/plans/:name/${verb}`, { schema: { summary: `${verb === 'pause' ? 'Pause' : 'Resume'} a plan's schedule and watch`, params: nameParams, response: { 200: planReplySchema, ...errors(401, 404) } } }, async (req) =>
        reply(await daemon.setPaused(req.params.name, paused)),
      );
    }
  };
}
