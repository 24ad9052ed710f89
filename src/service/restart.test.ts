/**
 * What a restart of the daemon (in this process) picks up: a scheduled run missed while it was
 * down runs once, a plan late beyond its allowed age shows `behind` until it succeeds, and the
 * config file's plans follow the file.
 */
import { describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { Daemon } from './daemon.js';
import { tempDir } from '../../test/support/tools.js';
import { waitFor } from '../../test/support/daemon.js';

process.env.CAIRN_KDF_N = '1024';

describe('daemon restart', () => {
  it('runs a missed scheduled run once, reports behind until it succeeds, and follows the config file', async () => {
    const base = await tempDir();
    const src = path.join(base, 'src');
    await fs.mkdir(src);
    await fs.writeFile(path.join(src, 'a'), 'a');
    const configFile = path.join(base, 'cairn.yaml');
    const plan = (name: string) => `  - name: ${name}\n    sources: [{ path: ${src} }]\n    schedule: "0 * * * *"\n`;
    await fs.writeFile(configFile, `plans:\n${plan('hourly')}${plan('dropped')}`);
    const opts = { configFile, dataDir: path.join(base, 'data'), listen: '127.0.0.1:0', logger: pino({ level: 'silent' }) };

    let d = await Daemon.start(opts);
    expect((await d.catalog.listPlans()).map((p) => p.plan.name)).toEqual(['dropped', 'hourly']);
    expect(await d.catalog.listJobs()).toEqual([]);
    // The plan was added three hours ago and has never run since.
    await d.catalog.db.updateTable('service_plans').set({ created_at: Date.now() - 3 * 3600_000 }).where('name', '=', 'hourly').execute();
    expect((await d.planStatus((await d.catalog.getPlan('hourly'))!)).behind).toBe(true);
    await d.stop();

    await fs.writeFile(configFile, `plans:\n${plan('hourly')}`);
    d = await Daemon.start(opts);
    try {
      expect((await d.catalog.listPlans()).map((p) => p.plan.name)).toEqual(['hourly']);
      const job = await waitFor('the missed run', async () => (await d.catalog.listJobs({ plan: 'hourly', state: 'done' }))[0], 20_000);
      expect(job.trigger).toBe('missed');
      const status = await d.planStatus((await d.catalog.getPlan('hourly'))!);
      expect(status).toMatchObject({ behind: false, lastSuccess: job.finishedAt });
      expect(Date.parse(status.nextRun!) - Date.now()).toBeLessThanOrEqual(3600_000);
      expect((await d.catalog.listJobs({ plan: 'hourly' })).length).toBe(1);
    } finally {
      await d.stop();
    }
  });
});
