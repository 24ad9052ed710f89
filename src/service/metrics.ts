/** Prometheus metrics of the daemon (prom-client), in a registry of its own. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobRecord } from './catalog.js';

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly jobs = new Counter({ name: 'cairn_jobs_total', help: 'Jobs that reached a final state', labelNames: ['plan', 'state'] as const, registers: [this.registry] });
  readonly duration = new Histogram({ name: 'cairn_job_duration_seconds', help: 'Wall time of finished jobs', labelNames: ['plan'] as const, buckets: [0.5, 1, 5, 15, 60, 300, 1800, 7200], registers: [this.registry] });
  readonly bytes = new Counter({ name: 'cairn_job_bytes_total', help: 'Bytes processed by finished jobs', labelNames: ['plan'] as const, registers: [this.registry] });
  readonly lastSuccess = new Gauge({ name: 'cairn_plan_last_success_timestamp_seconds', help: 'When each plan last succeeded', labelNames: ['plan'] as const, registers: [this.registry] });
  readonly behind = new Gauge({ name: 'cairn_plan_behind', help: '1 when a plan has not succeeded within its allowed age', labelNames: ['plan'] as const, registers: [this.registry] });
  readonly running = new Gauge({ name: 'cairn_jobs_running', help: 'Jobs running now', registers: [this.registry] });
  readonly plans = new Gauge({ name: 'cairn_plans', help: 'Plans in the catalog', labelNames: ['state'] as const, registers: [this.registry] });

  readonly checks = new Counter({ name: 'cairn_checks_total', help: 'Checks of plans\' repositories that reached a final state', labelNames: ['plan', 'state'] as const, registers: [this.registry] });
  readonly checkLastSuccess = new Gauge({ name: 'cairn_check_last_success_timestamp_seconds', help: 'When the check of each plan\'s repository last passed', labelNames: ['plan'] as const, registers: [this.registry] });
  readonly checkProblems = new Gauge({ name: 'cairn_check_problems', help: 'Problems (damaged packs, blobs, trees, snapshots) the last finished check of each plan\'s repository found', labelNames: ['plan'] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'cairn_' });
  }

  jobFinished(job: JobRecord): void {
    const plan = job.plan ?? '';
    if (job.kind === 'check') {
      this.checks.inc({ plan, state: job.state });
      if (job.state === 'done' && job.finishedAt) {
        this.checkLastSuccess.set({ plan }, Date.parse(job.finishedAt) / 1000);
        this.checkProblems.set({ plan }, 0);
      }
      // A check that failed without looking (the repository could not be reached) leaves the count as it was.
      const problems = (job.tasks[0]?.result as { problems?: number } | null)?.problems;
      if (job.state === 'failed' && typeof problems === 'number') this.checkProblems.set({ plan }, problems);
      return;
    }
    this.jobs.inc({ plan, state: job.state });
    this.bytes.inc({ plan }, job.bytes);
    if (job.startedAt && job.finishedAt) this.duration.observe({ plan }, (Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000);
    if (job.state === 'done' && job.finishedAt) this.lastSuccess.set({ plan }, Date.parse(job.finishedAt) / 1000);
  }

  forgetPlan(name: string): void {
    for (const g of [this.lastSuccess, this.behind, this.checkLastSuccess, this.checkProblems]) g.remove({ plan: name });
  }
}
