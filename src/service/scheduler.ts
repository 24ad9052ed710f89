/**
 * Cron schedules of plans (croner: 5 or 6 fields, optional time zone), with optional jitter and
 * the run missed while the daemon was down, run once at start. A plan has up to two: its backups
 * (`schedule`) and the checks of its repository (`check.schedule`).
 */
import { Cron } from 'croner';
import type { Plan } from './config.js';
import type { JobKind } from './catalog.js';

export type ScheduleTrigger = (plan: Plan, trigger: 'schedule' | 'missed', kind: JobKind) => void;

/** The cron expression of a plan's backups or checks, or undefined. */
export function scheduleOf(plan: Plan, kind: JobKind): string | undefined {
  return kind === 'check' ? plan.check?.schedule : plan.schedule;
}

const key = (name: string, kind: JobKind): string => `${kind}:${name}`;

interface Entry {
  cron: Cron;
  jitter: Set<NodeJS.Timeout>;
}

export class Scheduler {
  readonly #entries = new Map<string, Entry>();
  readonly #fire: ScheduleTrigger;

  constructor(fire: ScheduleTrigger) {
    this.#fire = fire;
  }

  /** Starts, restarts or stops a plan's schedules to match the plan as it is now. */
  sync(plan: Plan): void {
    this.remove(plan.name);
    if (plan.paused) return;
    for (const kind of ['backup', 'check'] as const) {
      const schedule = scheduleOf(plan, kind);
      if (!schedule) continue;
      const entry: Entry = { cron: null as unknown as Cron, jitter: new Set() };
      entry.cron = new Cron(schedule, { timezone: plan.timezone }, () => {
        if (plan.jitterSeconds <= 0) return this.#fire(plan, 'schedule', kind);
        const t = setTimeout(() => {
          entry.jitter.delete(t);
          this.#fire(plan, 'schedule', kind);
        }, Math.random() * plan.jitterSeconds * 1000);
        entry.jitter.add(t);
      });
      this.#entries.set(key(plan.name, kind), entry);
    }
  }

  remove(name: string): void {
    for (const kind of ['backup', 'check'] as const) {
      const e = this.#entries.get(key(name, kind));
      if (!e) continue;
      e.cron.stop();
      for (const t of e.jitter) clearTimeout(t);
      this.#entries.delete(key(name, kind));
    }
  }

  stop(): void {
    for (const e of this.#entries.values()) {
      e.cron.stop();
      for (const t of e.jitter) clearTimeout(t);
    }
    this.#entries.clear();
  }

  nextRun(name: string, kind: JobKind = 'backup'): Date | null {
    return this.#entries.get(key(name, kind))?.cron.nextRun() ?? null;
  }
}

/** Milliseconds between a schedule's next two runs (its interval, for `behind`). */
export function scheduleInterval(plan: Plan): number | null {
  if (!plan.schedule) return null;
  const [a, b] = new Cron(plan.schedule, { timezone: plan.timezone, paused: true }).nextRuns(2);
  return a && b ? b.getTime() - a.getTime() : null;
}

/**
 * Whether a scheduled run (of backups, or of checks) fell between the last run (or the plan's
 * creation) and now, so that the plan missed it while the daemon was down.
 */
export function missedRun(plan: Plan, since: number, now = Date.now(), kind: JobKind = 'backup'): boolean {
  const schedule = scheduleOf(plan, kind);
  if (!schedule || !plan.catchUp || plan.paused) return false;
  const cron = new Cron(schedule, { timezone: plan.timezone, paused: true });
  const next = cron.nextRun(new Date(since));
  return next !== null && next.getTime() < now;
}
