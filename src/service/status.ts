/**
 * A plan's status: last success, next run, target size and free space, pending changes, and
 * `behind` when the last success is older than the plan allows.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { maskUrl } from '../catalog/database.js';
import { parseDuration } from '../maintenance/forget.js';
import type { Plan, Target } from './config.js';
import type { RepositoryRef } from './backup-plan.js';
import { scheduleInterval } from './scheduler.js';

export interface TargetUsage {
  location: string;
  sizeBytes: number | null;
  freeBytes: number | null;
}

/** A duration such as `7d` in milliseconds (months of 30 days, years of 365). */
export function durationMs(s: string): number {
  const d = parseDuration(s);
  return (((d.years * 365 + d.months * 30 + d.days) * 24 + d.hours) * 3600) * 1000;
}

/** The age after which a plan counts as behind: its maxAge, else two schedule intervals; null when neither says. */
export function allowedAgeMs(plan: Plan): number | null {
  if (plan.maxAge) return durationMs(plan.maxAge);
  const interval = scheduleInterval(plan);
  return interval === null ? null : 2 * interval;
}

export function isBehind(plan: Plan, lastSuccess: number | null, since: number, now = Date.now()): boolean {
  if (plan.paused) return false;
  const allowed = allowedAgeMs(plan);
  if (allowed === null) return false;
  return now - (lastSuccess ?? since) > allowed;
}

/** The local folder a target writes to, or null when it is remote. */
export function localFolder(target: Target, own: RepositoryRef): string | null {
  const loc = target.kind === 'repository' ? (target.repository ?? own.location) : target.dest;
  if (loc.startsWith('local:')) return loc.slice('local:'.length);
  if (/^[a-z][a-z0-9+.-]*:/i.test(loc) && !loc.startsWith('/')) return null;
  return path.resolve(loc);
}

async function folderSize(dir: string): Promise<number> {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries;
    try {
      entries = await fs.readdir(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) total += (await fs.stat(p).catch(() => ({ size: 0 }))).size;
    }
  }
  return total;
}

const USAGE_TTL_MS = 15_000;
const usageCache = new Map<string, { at: number; usage: Promise<TargetUsage> }>();

/** Size and free space of a local target (cached for 15 s); nulls for remote ones. */
export function targetUsage(target: Target, own: RepositoryRef): Promise<TargetUsage> {
  const dir = localFolder(target, own);
  const location = maskUrl(target.kind === 'repository' ? (target.repository ?? own.location) : target.dest);
  if (dir === null) return Promise.resolve({ location, sizeBytes: null, freeBytes: null });
  const hit = usageCache.get(dir);
  if (hit && Date.now() - hit.at < USAGE_TTL_MS) return hit.usage;
  const usage = (async () => {
    const sizeBytes = await folderSize(dir);
    let probe = dir;
    // Free space of the nearest folder that exists (the target may not have been written yet).
    while (!(await fs.stat(probe).catch(() => null)) && path.dirname(probe) !== probe) probe = path.dirname(probe);
    const st = await fs.statfs(probe).catch(() => null);
    return { location, sizeBytes, freeBytes: st ? st.bavail * st.bsize : null };
  })();
  usageCache.set(dir, { at: Date.now(), usage });
  return usage;
}
