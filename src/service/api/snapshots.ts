/** `/api/v1/snapshots`: the snapshots in the daemon's repository, or in the repository of one plan. */
import type { FastifyPluginAsync } from 'fastify';
import { CairnError } from '../../errors.js';
import { snapshotOutput } from '../../repository/snapshot.js';
import { openRepository, planTag, repositoryRef } from '../backup-plan.js';
import type { Daemon } from '../daemon.js';
import { errors } from './schemas.js';

export function snapshotsPlugin(daemon: Daemon): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: { plan?: string } }>(
      '/snapshots',
      {
        schema: {
          summary: "List snapshots, oldest first: the daemon's repository, or with ?plan= that plan's snapshots in its repository",
          querystring: { type: 'object', properties: { plan: { type: 'string' } }, additionalProperties: false },
          response: { 200: { type: 'object', properties: { snapshots: { type: 'array', items: { type: 'object', additionalProperties: true } } } }, ...errors(400, 401, 404, 503) },
        },
      },
      async (req) => {
        let ref = daemon.repository;
        let tag: string | null = null;
        if (req.query.plan !== undefined) {
          const rec = await daemon.catalog.getPlan(req.query.plan);
          if (!rec) throw new CairnError('NOT_FOUND', `no plan named ${req.query.plan}`);
          if (rec.plan.target.kind !== 'repository') throw new CairnError('BAD_INPUT', `plan ${req.query.plan} writes to an ${rec.plan.target.kind} target, which has no snapshots`);
          ref = { ...repositoryRef(rec.plan.target, daemon.repository), initIfMissing: false };
          tag = planTag(rec.plan.name);
        }
        const repo = await openRepository({ ...ref, initIfMissing: false }).catch((err: unknown) => {
          if (err instanceof CairnError && err.code === 'REPO_NOT_FOUND') return null;
          throw err;
        });
        if (!repo) return { snapshots: [] };
        try {
          const all = await repo.listSnapshots(() => undefined);
          return { snapshots: all.filter((s) => tag === null || (s.tags ?? []).includes(tag)).map(snapshotOutput) };
        } finally {
          await repo.close();
        }
      },
    );
  };
}
