/**
 * Where a plan's sources go. Each target kind has one runner; `repository` is built in, other
 * kinds (`archive`, `mirror`) are registered by whoever provides them:
 *
 * ```ts
 * registerTargetRunner('archive', (target, sources, ctx) => runArchive(target, sources, ctx));
 * ```
 *
 * A runner reads the sources, writes the target, honours `ctx.signal` (stops without leaving
 * anything a later run would trip on) and reports progress through `ctx.onProgress`.
 */
import { CairnError } from '../errors.js';
import type { Plan, Target } from './config.js';
import type { RepositoryRef } from './backup-plan.js';

export interface TargetProgress {
  files: number;
  bytes: number;
  current?: string;
}

export interface TargetContext {
  plan: Plan;
  jobId: string;
  /** Paths the watcher saw change since the last success (plus retried items); null means "everything". */
  changedPaths: string[] | null;
  signal: AbortSignal;
  onProgress: (p: TargetProgress) => void;
  /** A problem with one item that did not stop the run (an unreadable file). */
  onItemError: (item: string, message: string) => void;
  /** The daemon's own repository, for a repository target that names none. */
  defaultRepository: RepositoryRef;
}

export interface TargetOutcome {
  files: number;
  bytes: number;
  /** Shown as the task's result: snapshot id, files written, … */
  result: Record<string, unknown>;
}

export interface SourceSpec {
  path: string;
  excludes?: string[];
  excludeCaches?: boolean;
  excludeIfPresent?: string[];
  excludeLargerThan?: string | number;
}

export type TargetRunner<K extends Target['kind'] = Target['kind']> = (target: Extract<Target, { kind: K }>, sources: SourceSpec[], ctx: TargetContext) => Promise<TargetOutcome>;

const runners = new Map<string, TargetRunner>();

/** Makes a target kind runnable; a later registration replaces an earlier one. */
export function registerTargetRunner<K extends Target['kind']>(kind: K, runner: TargetRunner<K>): void {
  runners.set(kind, runner as unknown as TargetRunner);
}

export function hasTargetRunner(kind: string): boolean {
  return runners.has(kind);
}

export function targetRunner(kind: string): TargetRunner {
  const r = runners.get(kind);
  if (!r) throw new CairnError('BAD_INPUT', `targets of kind ${kind} are not available in this build of cairn`);
  return r;
}
