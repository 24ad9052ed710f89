/**
 * Scheduled integrity checks of a plan's repository: restic's check (index, pack headers,
 * snapshots and trees), and with `readData` the contents of all packs or of a subset, under a
 * non-exclusive lock, so backups of other plans go on beside it.
 */
import { CairnError } from '../errors.js';
import { Lock } from '../repository/lock.js';
import { WorkerPool } from '../repository/worker-pool.js';
import { checkRepository, parseCheckReadData, parseReadDataSubset, type ReadDataSubset } from '../maintenance/check.js';
import { openBackend } from '../backend/location.js';
import { openRepository, repositoryRef, type RepositoryRef } from './backup-plan.js';
import type { CheckOptions, Plan } from './config.js';
import type { JobRecord } from './catalog.js';
import type { TargetOutcome, TargetProgress } from './targets.js';
import { repoGate } from './repo-gate.js';

/** What a check job reads, fixed when it is queued (in its `meta`). */
export interface CheckSpec {
  readData: CheckOptions['readData'];
  /** For `next/t`: the group this job reads (1..t). */
  group?: number;
}

/** Problems and warnings a job's result lists at most (the count is always whole). */
const LISTED = 20;

/**
 * The spec of a new check job: the plan's own (or `override`, for a check run on demand); for
 * `next/t`, the group after the one the newest earlier check of the same t took (1 after a
 * change of t, and again the same group when that check was cancelled).
 */
export function nextCheckSpec(plan: Plan, earlier: JobRecord[], override?: CheckOptions['readData']): CheckSpec {
  const readData = override ?? plan.check?.readData ?? false;
  const rd = parseCheckReadData(readData);
  if (rd.kind !== 'next') return { readData };
  const last = earlier.find((j) => j.kind === 'check' && j.meta?.readData === readData && typeof j.meta.group === 'number');
  if (!last) return { readData, group: 1 };
  const g = last.meta!.group as number;
  if (last.state === 'cancelled') return { readData, group: Math.min(g, rd.groups) };
  return { readData, group: (g % rd.groups) + 1 };
}

function subsetOf(spec: CheckSpec): ReadDataSubset | undefined {
  const rd = parseCheckReadData(spec.readData);
  if (rd.kind === 'subset') return parseReadDataSubset(rd.spec);
  if (rd.kind === 'next') return parseReadDataSubset(`${spec.group ?? 1}/${rd.groups}`);
  return undefined;
}

export interface CheckPlanContext {
  signal: AbortSignal;
  onProgress: (p: TargetProgress) => void;
  defaultRepository: RepositoryRef;
  /**
   * Whether a backup of the plan has succeeded: a repository that is not there yet is then lost,
   * not still to come, and the check fails.
   */
  hadBackup: boolean;
}

/**
 * Checks the plan's repository. Damage fails the check with INTEGRITY and the problems in the
 * error's `result`; a repository that no backup has made yet passes with `skipped`.
 */
export async function checkPlan(plan: Plan, spec: CheckSpec, ctx: CheckPlanContext): Promise<TargetOutcome> {
  if (plan.target.kind !== 'repository') throw new CairnError('BAD_INPUT', `plan ${plan.name} writes to an ${plan.target.kind} target, which has no repository to check`);
  const ref = repositoryRef(plan.target, ctx.defaultRepository);
  const rd = parseCheckReadData(spec.readData);
  const subset = subsetOf(spec);
  const readData = rd.kind !== 'none';
  const label = rd.kind === 'none' ? 'none' : rd.kind === 'all' ? 'all' : subset!.label;
  if (!ctx.hadBackup) {
    const backend = openBackend(ref.location);
    try {
      if (!(await backend.exists())) return { files: 0, bytes: 0, result: { skipped: 'the repository does not exist yet: no backup of this plan has succeeded' } };
    } finally {
      await backend.close();
    }
  }
  // A check never creates the repository it is to check.
  const repo = await openRepository({ ...ref, initIfMissing: false });
  let lock: Lock | null = null;
  let pool: WorkerPool | null = null;
  let leaveGate: (() => void) | null = null;
  try {
    pool = readData ? new WorkerPool(repo).start() : null;
    // A prune of the daemon's that holds the repository is waited for (see repo-gate.ts).
    leaveGate = await repoGate.shared(ref.location, ctx.signal);
    lock = await Lock.begin(repo, false);
    repo.gateWrites(lock.confirmed);
    const r = await checkRepository(repo, pool, {
      readData,
      readSubset: subset?.select,
      signal: ctx.signal,
      onProgress: (p) => ctx.onProgress({ files: p.done, bytes: 0, current: p.phase }),
    });
    // A client that held the repository first wins over whatever this check found meanwhile.
    await lock.confirmed;
    const result = {
      readData: label,
      ...(spec.group !== undefined && { group: spec.group }),
      packs: r.packs,
      packsRead: r.packsRead,
      bytesRead: r.bytesRead,
      snapshots: r.snapshots,
      problems: r.errors.length,
      errors: r.errors.slice(0, LISTED),
      warnings: r.warnings.slice(0, LISTED),
    };
    if (r.errors.length > 0) {
      const shown = r.errors.slice(0, 3).join('; ');
      throw Object.assign(new CairnError('INTEGRITY', `check found ${r.errors.length} problem${r.errors.length === 1 ? '' : 's'}: ${shown}${r.errors.length > 3 ? '; …' : ''}`), { result });
    }
    return { files: r.packsRead, bytes: r.bytesRead, result };
  } finally {
    await pool?.close().catch(() => undefined);
    await lock?.release().catch(() => undefined);
    leaveGate?.();
    await repo.close().catch(() => undefined);
  }
}
