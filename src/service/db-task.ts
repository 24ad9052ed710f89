/**
 * Database plans: each `database` source of a plan is one task of its job, whose dump is streamed
 * into the plan's repository as its own snapshot (`/mysql/<name>.sql`, …; tagged `db` and with the
 * plan's tag), optionally followed by a restore drill that loads the dump into a scratch database,
 * counts tables and rows, and drops it. A failed dump or drill fails the task (and is retried).
 */
import os from 'node:os';
import { CairnError } from '../errors.js';
import { backupDatabase } from '../sources/db/backup.js';
import { withPassword } from '../sources/db/password.js';
import { parseDbUrl } from '../sources/db/url.js';
import { verifyDump } from '../sources/db/verify.js';
import { forget, planTag, repositoryRef, withRepository } from './backup-plan.js';
import { databaseTaskName, type DatabaseSource } from './config.js';
import type { SourceTaskRunner } from './jobs.js';

export const databaseTask: SourceTaskRunner = async (plan, task, ctx) => {
  const source = plan.sources.find((s): s is DatabaseSource => s.kind === 'database' && databaseTaskName(s) === task.name);
  if (!source) throw new CairnError('BAD_INPUT', `the plan has no database ${task.name}`);
  if (plan.target.kind !== 'repository') throw new CairnError('BAD_INPUT', 'database sources write to repository targets');
  const loc = await withPassword(parseDbUrl(source.url), source.passwordFile);
  // The drill loads into a scratch database on the source's own server unless told otherwise.
  const scratch = typeof source.verify === 'object' && source.verify.scratch ? await withPassword(parseDbUrl(source.verify.scratch, { needName: false }), source.passwordFile) : loc.engine === 'sqlite' ? undefined : { ...loc, database: '' };
  const ref = repositoryRef(plan.target, ctx.defaultRepository);
  return withRepository(ref, plan.compression, async (repo, pool, release) => {
    const r = await backupDatabase(repo, pool, loc, { host: os.hostname(), tags: [...(plan.tags ?? []), planTag(plan.name)], signal: ctx.signal });
    const bytes = r.summary.total_bytes_processed;
    ctx.onProgress({ files: 1, bytes, current: r.path });
    let verified: { tables: number; rows: number } | undefined;
    if (source.verify) {
      const report = await verifyDump(repo, await repo.loadSnapshot(r.snapshotId), r.path, scratch, ctx.signal);
      verified = { tables: report.tables, rows: report.rows };
    }
    await release();
    const forgotten = plan.retention ? await forget(repo, plan, ref.location, ctx.signal) : [];
    return { files: 1, bytes, result: { snapshot: r.snapshotId, path: r.path, ...(verified && { verified }), forgotten } };
  }, ctx.signal);
};
