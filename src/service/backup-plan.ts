/**
 * The built-in `repository` target: one snapshot of a plan's sources, with the latest snapshot of
 * the same host and paths as parent, then the plan's retention (restic's forget) on the plan's own
 * snapshots (those tagged `plan:NAME`).
 */
import os from 'node:os';
import { passwordFileCandidates } from '../util/secret-file.js';
import { Archiver } from '../archiver/archiver.js';
import { buildExcluder } from '../archiver/excludes.js';
import { parseSize } from '../util/size.js';
import { openBackend } from '../backend/location.js';
import { parseCompressionMode } from '../compress/zstd.js';
import { applyPolicy, policyIsEmpty } from '../maintenance/forget.js';
import { parseMaxUnused, prune } from '../maintenance/prune.js';
import { findParent } from '../repository/find.js';
import { Lock } from '../repository/lock.js';
import { Repository } from '../repository/repository.js';
import { WorkerPool } from '../repository/worker-pool.js';
import type { LocalCache } from '../repository/cache.js';
import { retentionPolicy, type Plan, type RepositoryTarget } from './config.js';
import { repoGate } from './repo-gate.js';
import type { SourceSpec, TargetContext, TargetRunner } from './targets.js';

/** A repository and the file that holds its password (read when used, never logged). */
export interface RepositoryRef {
  location: string;
  passwordFile: string;
  /** Create the repository when it does not exist yet (the daemon's own repository). */
  initIfMissing?: boolean;
  /** The daemon's local cache (see repository/cache.ts). */
  cache?: LocalCache;
}

export const planTag = (name: string): string => `plan:${name}`;

/** Creations in progress by location: two jobs that find a repository missing must not both create it. */
const creating = new Map<string, Promise<void>>();

async function createOnce(ref: RepositoryRef, password: string): Promise<void> {
  let p = creating.get(ref.location);
  if (!p) {
    p = (async () => {
      const backend = openBackend(ref.location);
      try {
        if (!(await backend.exists())) await (await Repository.init(backend, password)).close();
      } finally {
        await backend.close();
        creating.delete(ref.location);
      }
    })();
    creating.set(ref.location, p);
  }
  await p;
}

/** Opens (or, when allowed, first creates) a repository; the caller closes it. */
export async function openRepository(ref: RepositoryRef, compression?: string): Promise<Repository> {
  // restic's reading of the file first; its first line exactly opens keys earlier versions made.
  const passwords = passwordFileCandidates(ref.passwordFile, 'repository password');
  if (ref.initIfMissing) await createOnce(ref, passwords[0]);
  const backend = openBackend(ref.location);
  try {
    return (await Repository.openWithAny(backend, passwords, { compression: compression ? parseCompressionMode(compression) : undefined, cache: ref.cache })).repo;
  } catch (err) {
    await backend.close();
    throw err;
  }
}

export interface BackupPlanOptions {
  /**
   * Paths known to have changed since the plan's last success (from the watcher's journal). With a
   * parent that is the plan's own snapshot, only these are looked at and everything else is taken
   * from the parent; null (schedule, start-up, manual runs) walks everything.
   */
  changedPaths: string[] | null;
  signal: AbortSignal;
  onProgress: TargetContext['onProgress'];
  onItemError: TargetContext['onItemError'];
  host?: string;
}

export interface BackupPlanResult {
  /** The snapshot saved; with `skipped`, the last one, whose tree this run found again. */
  snapshotId: string;
  skipped?: boolean;
  files: number;
  bytes: number;
  errors: number;
  forgotten: string[];
}

/**
 * Opens a repository, waits for the daemon's jobs that hold it alone (see repo-gate.ts), takes a
 * shared lock (writes wait until it is confirmed), loads the index and starts a worker pool;
 * releases all of it after `fn`, or when `fn` calls `release`.
 */
export async function withRepository<T>(ref: RepositoryRef, compression: string | undefined, fn: (repo: Repository, pool: WorkerPool, release: () => Promise<void>) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const repo = await openRepository(ref, compression);
  let lock: Lock | null = null;
  let pool: WorkerPool | null = null;
  let leaveGate: (() => void) | null = null;
  const release = async () => {
    const l = lock;
    lock = null;
    try {
      await l?.release();
    } finally {
      leaveGate?.();
    }
  };
  try {
    leaveGate = await repoGate.shared(ref.location, signal);
    lock = await Lock.begin(repo, false);
    repo.gateWrites(lock.confirmed);
    await repo.loadIndex();
    pool = new WorkerPool(repo);
    return await fn(repo, pool, release);
  } finally {
    await pool?.close().catch(() => undefined);
    await release().catch(() => undefined);
    await repo.close().catch(() => undefined);
  }
}

/** Backs up a plan's path sources into a repository as one snapshot, then applies the plan's retention. */
export async function backupPlan(ref: RepositoryRef, plan: Plan, sources: SourceSpec[], opts: BackupPlanOptions): Promise<BackupPlanResult> {
  const paths = [...new Set(sources.map((s) => s.path))];
  const host = opts.host ?? os.hostname();
  const excludes = sources.flatMap((s) => s.excludes ?? []);
  // Like the patterns, the tag rules and the size limit of every source apply to the whole walk
  // (the smallest limit wins).
  const limits = sources.map((s) => s.excludeLargerThan).filter((l) => l !== undefined).map((l) => (typeof l === 'number' ? l : parseSize(l, 'excludeLargerThan')));
  const excluder = await buildExcluder({
    exclude: excludes,
    caches: sources.some((s) => s.excludeCaches),
    ifPresent: [...new Set(sources.flatMap((s) => s.excludeIfPresent ?? []))],
    largerThan: limits.length > 0 ? Math.min(...limits) : undefined,
  });
  return withRepository(ref, plan.compression, async (repo, pool, release) => {
    const parent = await findParent(repo, host, paths);
    const archiver = new Archiver(repo, pool, {
      paths,
      host,
      tags: [...(plan.tags ?? []), planTag(plan.name)],
      excluded: excluder.patterns.length > 0 ? excluder.excluded : undefined,
      excludePatterns: excludes,
      excludeLists: excluder.lists,
      parent,
      oneFileSystem: plan.oneFileSystem,
      skipIfUnchanged: plan.skipIfUnchanged,
      ignoreInode: plan.ignoreInode,
      ignoreCtime: plan.ignoreCtime,
      withAtime: plan.withAtime,
      // The journal counts from the plan's last success, so it only describes the way from the plan's own snapshot.
      changedPaths: opts.changedPaths && parent?.tags?.includes(planTag(plan.name)) ? opts.changedPaths : undefined,
      signal: opts.signal,
      onProgress: (p) => opts.onProgress({ files: p.filesDone, bytes: p.bytesDone, current: p.current }),
      onError: (p, err) => opts.onItemError(p, err.message),
    });
    const result = await archiver.run();
    await release();
    const forgotten = plan.retention ? await forget(repo, plan, ref.location, opts.signal) : [];
    return {
      snapshotId: result.snapshotId,
      ...(result.skipped && { skipped: true }),
      files: result.summary.total_files_processed,
      bytes: result.summary.total_bytes_processed,
      errors: result.errors.length,
      forgotten,
    };
  }, opts.signal);
}

/**
 * Removes the plan's snapshots that its retention no longer keeps, under an exclusive lock (once
 * the daemon's other jobs on `location` let go of it).
 */
export async function forget(repo: Repository, plan: Plan, location: string, signal?: AbortSignal): Promise<string[]> {
  const policy = retentionPolicy(plan.retention!);
  if (policyIsEmpty(policy)) return [];
  const leaveGate = await repoGate.exclusive(location, signal);
  let lock: Lock;
  try {
    lock = await Lock.acquire(repo, true);
  } catch (err) {
    leaveGate();
    throw err;
  }
  try {
    const mine = (await repo.listSnapshots(() => undefined)).filter((s) => (s.tags ?? []).includes(planTag(plan.name)));
    const { remove } = applyPolicy(mine, policy);
    for (const s of remove) await repo.backend.remove({ type: 'snapshot', name: s.id });
    if (remove.length > 0 && plan.prune) {
      // Other jobs may have written since this job read the index, and prune reads it itself, file by file.
      repo.forgetIndex();
      await prune(repo, { maxUnused: parseMaxUnused(typeof plan.prune === 'object' && plan.prune.maxUnused ? plan.prune.maxUnused : '5%') });
    }
    return remove.map((s) => s.id);
  } finally {
    try {
      await lock.release();
    } finally {
      leaveGate();
    }
  }
}

/** The repository a target names, or the daemon's own; a missing repository is created with the password file's password. */
export function repositoryRef(target: RepositoryTarget, own: RepositoryRef): RepositoryRef {
  if (!target.repository) return own;
  return { location: target.repository, passwordFile: target.passwordFile ?? own.passwordFile, initIfMissing: true, cache: own.cache };
}

/** The built-in runner of `repository` targets. */
export const repositoryRunner: TargetRunner<'repository'> = async (target, sources, ctx) => {
  const r = await backupPlan(repositoryRef(target, ctx.defaultRepository), ctx.plan, sources, ctx);
  return { files: r.files, bytes: r.bytes, result: { snapshot: r.snapshotId, ...(r.skipped && { skipped: true }), unreadable: r.errors, forgotten: r.forgotten } };
};
