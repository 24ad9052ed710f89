import { describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import { checkCron, loadConfig, parsePlan, parseTargetSpec, retentionPolicy } from './config.js';
import { missedRun, scheduleInterval } from './scheduler.js';
import { durationMs, isBehind } from './status.js';
import { tempDir } from '../../test/support/tools.js';

describe('plans', () => {
  it('fills defaults and resolves source paths', () => {
    const p = parsePlan({ name: 'docs', sources: [{ path: 'docs' }] }, '/home/a');
    expect(p).toMatchObject({ sources: [{ kind: 'path', path: '/home/a/docs' }], target: { kind: 'repository' }, catchUp: true, maxAttempts: 3, paused: false });
  });

  it('names every problem', () => {
    expect(() => parsePlan({ name: '-x', sources: [], schedule: '61 * * * *', timezone: 'Mars/Base', retention: '7w', extra: 1 })).toThrow(
      /name: a plan name.*sources: a plan needs at least one source.*retention: a duration.*Unrecognized key: "extra".*schedule: invalid cron.*unknown time zone/s,
    );
    expect(() => parsePlan({ name: 'a', sources: [{ path: '/x' }], schedule: '61 * * * *' })).toThrow(/schedule: invalid cron expression "61 \* \* \* \*"/);
    expect(() => parsePlan({ name: 'a', sources: [{ path: '/x' }], timezone: 'Mars/Base' })).toThrow(/unknown time zone "Mars\/Base"/);
  });

  it('takes backup\'s tag and size excludes for repository targets, and names bad ones', () => {
    const p = parsePlan({ name: 'a', sources: [{ path: '/x', excludeCaches: true, excludeIfPresent: ['.nobackup', '.skip:SKIP'], excludeLargerThan: '2G' }] });
    expect(p.sources[0]).toMatchObject({ excludeCaches: true, excludeIfPresent: ['.nobackup', '.skip:SKIP'], excludeLargerThan: '2G' });
    expect(() => parsePlan({ name: 'a', sources: [{ path: '/x', excludeCaches: true }], target: 'archive:/copies' })).toThrow(/sources\.0: excludeCaches, excludeIfPresent and excludeLargerThan apply to repository targets/);
    expect(() => parsePlan({ name: 'a', sources: [{ path: '/x', excludeIfPresent: [':x'] }] })).toThrow(/sources\.0\.excludeIfPresent\.0: invalid --exclude-if-present ":x"/);
    expect(() => parsePlan({ name: 'a', sources: [{ path: '/x', excludeLargerThan: 'lots' }] })).toThrow(/sources\.0\.excludeLargerThan: invalid excludeLargerThan "lots"/);
  });

  it('checks cron expressions of 5 and 6 fields', () => {
    expect(checkCron('*/5 * * * *')).toBeNull();
    expect(checkCron('*/10 * * * * *')).toBeNull();
    expect(checkCron('0 3 * * *', 'Europe/Berlin')).toBeNull();
    expect(checkCron('* * *')).toMatch(/3 fields/);
    expect(checkCron('0 25 * * *')).toMatch(/invalid cron/);
  });

  it('parses targets as the CLI writes them', () => {
    expect(parseTargetSpec('/srv/repo')).toEqual({ kind: 'repository', repository: '/srv/repo' });
    expect(parseTargetSpec('archive:/srv/copies')).toEqual({ kind: 'archive', dest: '/srv/copies', codec: 'zstd' });
    expect(parseTargetSpec('archive+gzip:s3:http://h:9000/b/p')).toEqual({ kind: 'archive', dest: 's3:http://h:9000/b/p', codec: 'gzip' });
    expect(parseTargetSpec('mirror:s3:http://h:9000/b')).toEqual({ kind: 'mirror', dest: 's3:http://h:9000/b' });
    expect(() => parseTargetSpec('archive+lz4:/x')).toThrow(/unknown archive codec "lz4"/);
    expect(() => parsePlan({ name: 'a', sources: [{ path: '/x' }], target: 'ftp:host' })).toThrow(/unknown target: unknown repository type "ftp:"/);
    expect(() => parsePlan({ name: 'a', sources: [{ path: '/x' }], target: 'mirror:ftp://h' })).toThrow(/unknown target: unknown destination "ftp:"/);
    expect(() => parsePlan({ name: 'a', sources: [{ path: '/x' }, { path: '/y' }], target: 'mirror:/m' })).toThrow(/a mirror follows exactly one folder/);
  });

  it('turns shorthand ages and policies into forget policies', () => {
    expect(retentionPolicy('7d')).toEqual({ within: { years: 0, months: 0, days: 7, hours: 0 } });
    expect(retentionPolicy(parsePlan({ name: 'a', sources: [{ path: '/x' }], retention: { last: 3, daily: 'unlimited' } }).retention!)).toMatchObject({ last: 3, daily: -1 });
    expect(durationMs('1d2h')).toBe(26 * 3600_000);
  });
});

describe('schedules and status', () => {
  const plan = parsePlan({ name: 'p', sources: [{ path: '/x' }], schedule: '0 * * * *' });
  it('finds a run missed while the daemon was down', () => {
    const now = Date.parse('2026-01-01T10:30:00Z');
    expect(missedRun(plan, Date.parse('2026-01-01T09:10:00Z'), now)).toBe(true);
    expect(missedRun(plan, Date.parse('2026-01-01T10:10:00Z'), now)).toBe(false);
    expect(missedRun({ ...plan, catchUp: false }, Date.parse('2026-01-01T09:10:00Z'), now)).toBe(false);
  });
  it('finds a check missed while the daemon was down, by the check schedule alone', () => {
    const checked = parsePlan({ name: 'c', sources: [{ path: '/x' }], schedule: '0 * * * *', check: { schedule: '0 3 * * *', readData: 'next/7' } });
    expect(checked.check).toEqual({ schedule: '0 3 * * *', readData: 'next/7' });
    const now = Date.parse('2026-01-02T04:00:00Z');
    expect(missedRun(checked, Date.parse('2026-01-02T02:00:00Z'), now, 'check')).toBe(true);
    expect(missedRun(checked, Date.parse('2026-01-02T03:30:00Z'), now, 'check')).toBe(false);
    expect(missedRun(plan, Date.parse('2026-01-01T00:00:00Z'), now, 'check')).toBe(false);
    expect(missedRun({ ...checked, paused: true }, Date.parse('2026-01-02T02:00:00Z'), now, 'check')).toBe(false);
    expect(parsePlan({ name: 'd', sources: [{ path: '/x' }], check: { schedule: '0 3 * * *' } }).check).toEqual({ schedule: '0 3 * * *', readData: false });
  });
  it('is behind after two schedule intervals without success, or past maxAge', () => {
    expect(scheduleInterval(plan)).toBe(3600_000);
    const now = Date.now();
    expect(isBehind(plan, now - 3 * 3600_000, now - 10 * 3600_000, now)).toBe(true);
    expect(isBehind(plan, now - 3600_000, now - 10 * 3600_000, now)).toBe(false);
    expect(isBehind({ ...plan, maxAge: '30m' } as never, now - 3600_000, 0, now)).toBe(false);
    expect(isBehind({ ...plan, schedule: undefined, maxAge: '1h' }, now - 2 * 3600_000, 0, now)).toBe(true);
  });
});

describe('config files', () => {
  it('reads YAML with ${ENV} references and a .env file', async () => {
    const dir = await tempDir();
    await fs.writeFile(path.join(dir, '.env'), 'CAIRN_TEST_DOCS=/srv/docs\n');
    await fs.writeFile(
      path.join(dir, 'cairn.yaml'),
      'listen: 127.0.0.1:${CAIRN_TEST_PORT:-9000}\nplans:\n  - name: docs\n    sources: [{ path: "${CAIRN_TEST_DOCS}" }]\n    schedule: "0 3 * * *"\n    retention: 30d\n    hooks: { before: "echo hi", timeoutSeconds: 5 }\n',
    );
    const { config, plans } = loadConfig(path.join(dir, 'cairn.yaml'));
    expect(config.listen).toBe('127.0.0.1:9000');
    expect(plans[0]).toMatchObject({ name: 'docs', sources: [{ path: '/srv/docs' }], hooks: { before: ['echo hi'], timeoutSeconds: 5 } });
    await fs.writeFile(path.join(dir, 'bad.json'), '{"plans": [{"name": "x", "sources": [{"path": "${CAIRN_TEST_UNSET_VAR}"}]}]}');
    expect(() => loadConfig(path.join(dir, 'bad.json'))).toThrow(/CAIRN_TEST_UNSET_VAR/);
    await fs.writeFile(path.join(dir, 'bad2.json'), '{"plans": [{"name": "x", "sources": [{"path": "/x"}], "schedule": "nope"}]}');
    expect(() => loadConfig(path.join(dir, 'bad2.json'))).toThrow(/plans\[0\].*invalid cron/);
  });
});
