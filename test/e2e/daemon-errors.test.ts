/**
 * Must-show 5: bad input is answered with a 4xx and a clear JSON error, and the daemon keeps
 * running. Also the parts of the API that are not plans and jobs: health, metrics, OpenAPI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '../support/tools.js';
import { startDaemon, type DaemonProcess } from '../support/daemon.js';

interface ErrorBody {
  error: { code: string; message: string };
}

describe('daemon errors (must-show 5)', () => {
  let d: DaemonProcess;
  let src: string;
  beforeAll(async () => {
    src = await tempDir();
    await fs.writeFile(path.join(src, 'a.txt'), 'a');
    d = await startDaemon();
  });
  afterAll(async () => {
    expect(await d?.stop()).toBe(0);
  });

  const expectError = (r: { status: number; body: unknown }, status: number, code: string, message: RegExp) => {
    expect(r.status).toBe(status);
    expect((r.body as ErrorBody).error.code).toBe(code);
    expect((r.body as ErrorBody).error.message).toMatch(message);
    expect(JSON.stringify(r.body)).not.toContain(d.token);
  };

  it('rejects bad plans with 400 and says what is wrong', async () => {
    expectError(await d.api('POST', '/api/v1/plans', { name: 'p', sources: [{ path: src }], schedule: '*/5 * * *' }), 400, 'BAD_INPUT', /schedule: invalid cron expression "\*\/5 \* \* \*": it has 4 fields/);
    expectError(await d.api('POST', '/api/v1/plans', { name: 'p', sources: [{ path: src }], schedule: '0 99 * * *' }), 400, 'BAD_INPUT', /invalid cron expression/);
    expectError(await d.api('POST', '/api/v1/plans', { name: 'p', sources: [{ path: src }], target: 'gopher:somewhere' }), 400, 'BAD_INPUT', /unknown target/);
    expectError(await d.api('POST', '/api/v1/plans', { name: 'p', sources: [{ path: src }], target: 'archive+lz4:/tmp/x' }), 400, 'BAD_INPUT', /unknown archive codec "lz4"/);
    expectError(await d.api('POST', '/api/v1/plans', { name: 'p', sources: [{ path: path.join(src, 'missing') }] }), 400, 'BAD_INPUT', /source path .*missing does not exist/);
    expectError(await d.api('POST', '/api/v1/plans', '{"name": "p", "sources": ['), 400, 'BAD_INPUT', /not valid JSON/);
    expectError(await d.api('POST', '/api/v1/plans', { name: 'p', sources: [{ path: src }], colour: 'red' }), 400, 'BAD_INPUT', /Unrecognized key: "colour"/);
    expectError(await d.api('POST', '/api/v1/plans', [1, 2]), 400, 'BAD_INPUT', /invalid plan/);
    expect((await d.api<{ plans: unknown[] }>('GET', '/api/v1/plans')).body.plans).toEqual([]);
  });

  it('gives the same messages through the CLI', async () => {
    const cron = await d.cli(['plan', 'add', 'p', '--path', src, '--schedule', 'every minute']);
    expect(cron.code).toBe(1);
    expect(cron.stderr).toMatch(/invalid cron expression "every minute"/);
    const target = await d.cli(['plan', 'add', 'p', '--path', src, '--target', 'gopher:x']);
    expect(target.stderr).toMatch(/unknown target/);
    const missing = await d.cli(['plan', 'add', 'p', '--path', path.join(src, 'nope')]);
    expect(missing.stderr).toMatch(/does not exist/);
  });

  it('needs the right token everywhere but /healthz', async () => {
    for (const route of ['/api/v1/plans', '/api/v1/jobs', '/metrics', '/api/v1/openapi.json', '/backup/x']) {
      const none = await fetch(`${d.url}${route}`);
      expect(none.status).toBe(401);
      expect(((await none.json()) as ErrorBody).error).toMatchObject({ code: 'UNAUTHORIZED', message: expect.stringMatching(/missing API token/) });
    }
    expectError(await d.api('GET', '/api/v1/plans', undefined, { authorization: 'Bearer not-the-token' }), 401, 'UNAUTHORIZED', /wrong API token/);
    expectError(await d.api('GET', '/api/v1/plans', undefined, { authorization: `Bearer ${d.token}x` }), 401, 'UNAUTHORIZED', /wrong API token/);
    expectError(await d.api('GET', '/api/v1/plans', undefined, { authorization: `Basic ${d.token}` }), 401, 'UNAUTHORIZED', /wrong API token/);
    const health = await fetch(`${d.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    const mode = (await fs.stat(path.join(d.dataDir, 'api-token'))).mode & 0o777;
    expect(mode).toBe(0o600);
    expect(d.url).toMatch(/^http:\/\/127\.0\.0\.1:/);
  });

  it('answers unknown things with 404 and conflicts with 409', async () => {
    expectError(await d.api('GET', '/api/v1/plans/nope'), 404, 'NOT_FOUND', /no plan named nope/);
    expectError(await d.api('POST', '/api/v1/plans/nope/run'), 404, 'NOT_FOUND', /no plan named nope/);
    expectError(await d.api('GET', '/api/v1/jobs/j123'), 404, 'NOT_FOUND', /no job j123/);
    expectError(await d.api('GET', '/api/v1/nothing'), 404, 'NOT_FOUND', /no route GET \/api\/v1\/nothing/);
    expectError(await d.api('GET', '/api/v1/jobs?state=sleeping'), 400, 'BAD_INPUT', /state/);
    expect((await d.api('POST', '/api/v1/plans', { name: 'twice', sources: [{ path: src }], paused: true })).status).toBe(201);
    expectError(await d.api('POST', '/api/v1/plans', { name: 'twice', sources: [{ path: src }] }), 409, 'CONFLICT', /already exists/);
    expectError(await d.api('PUT', '/api/v1/plans/twice', { name: 'other', sources: [{ path: src }] }), 400, 'BAD_INPUT', /cannot be renamed/);
    const put = await d.api<{ plan: { schedule: string; paused: boolean } }>('PUT', '/api/v1/plans/twice', { sources: [{ path: src }], schedule: '0 3 * * *', paused: true });
    expect(put.status).toBe(200);
    expect(put.body.plan).toMatchObject({ schedule: '0 3 * * *', paused: true });
  });

  it('serves metrics and an OpenAPI document, and is still running', async () => {
    const metrics = await d.api<string>('GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/^cairn_plans\{state="paused"\} 1$/m);
    expect(metrics.body).toMatch(/cairn_process_resident_memory_bytes/);
    const doc = (await d.api<{ openapi: string; paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>> }>('GET', '/api/v1/openapi.json')).body;
    expect(doc.openapi).toBe('3.1.0');
    for (const p of ['/api/v1/plans', '/api/v1/plans/{name}', '/api/v1/plans/{name}/run', '/api/v1/plans/{name}/pause', '/api/v1/jobs', '/api/v1/jobs/{id}', '/api/v1/jobs/{id}/events', '/api/v1/snapshots', '/healthz', '/metrics', '/backup']) {
      expect(doc.paths[p], p).toBeDefined();
    }
    expect(doc.paths['/api/v1/plans'].post.requestBody).toBeDefined();
    expect(doc.paths['/api/v1/plans'].post.responses['400']).toBeDefined();
    expect(d.child.exitCode).toBeNull();
    expect((await fetch(`${d.url}/healthz`)).status).toBe(200);
  });
});
