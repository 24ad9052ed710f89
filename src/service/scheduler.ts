/**
 * Cron schedules of plans (croner: 5 or 6 fields, optional time zone), with optional jitter and
 * the run missed while the daemon was down, run once at start.
 */
import { Cron } from 'croner';
import type { Plan } from './config.js';

export type ScheduleTrigger = (plan: Plan, trigger: 'schedule' | 'missed') => void;

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

  /** Starts, restarts or stops a plan's schedule to match the plan as it is now. */
  sync(plan: Plan): void {
    this.remove(plan.name);
    if (!plan.schedule || plan.paused) return;
    const entry: Entry = { cron: null as unknown as Cron, jitter: new Set() };
    entry.cron = new Cron(plan.schedule, { timezone: plan.timezone }, () => {
      if (plan.jitterSeconds <= 0) return this.#fire(plan, 'schedule');
      const t = setTimeout(() => {
        entry.jitter.delete(t);
        this.#fire(plan, 'schedule');
      }, Math.random() * plan.jitterSeconds * 1000);
      entry.jitter.add(t);
    });
    this.#entries.set(plan.name, entry);
  }

  remove(name: string): void {
    const e = this.#entries.get(name);
    if (!e) return;
    e.cron.stop();
    for (const t of e.jitter) clearTimeout(t);
    this.#entries.delete(name);
  }

  stop(): void {
    for (const name of [...this.#entries.keys()]) this.remove(name);
  }

  nextRun(name: string): Date | null {
    return this.#entries.get(name)?.cron.nextRun() ?? null;
  }
}

/** Milliseconds between a schedule's next two runs (its interval, for `behind`). */
export function scheduleInterval(plan: Plan): number | null {
  if (!plan.schedule) return null;
  const [a, b] = new Cron(plan.schedule, { timezone: plan.timezone, paused: true }).nextRuns(2);
  return a && b ? b.getTime() - a.getTime() : null;
}

/**
 * Whether a scheduled run fell between the last run (or the plan's creation) and now, so that the
 * plan missed it while the daemon was down.
 */
export function missedRun(plan: Plan, since: number, now = Date.now()): boolean {
  if (!plan.schedule || !plan.catchUp || plan.paused) return false;
  const cron = new Cron(plan.schedule, { timezone: plan.timezone, paused: true });
  const next = cron.nextRun(new Date(since));
  return next !== null && next.getTime() < now;
}
