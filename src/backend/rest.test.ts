import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnsweringServer } from '../../test/support/answering-server.js';
import { startRestServer, type RestServer } from '../../test/support/rest-server.js';
import { runBackendConformance } from './conformance.js';
import { FaultyBackend } from './faulty.js';
import { RetryBackend } from './retry.js';
import { parseRestLocation, RestBackend } from './rest.js';

let server: RestServer;
beforeAll(async () => {
  server = await startRestServer(':memory:');
});
afterAll(async () => server?.stop());

function backend(): RestBackend {
  return new RestBackend(parseRestLocation(`${server.url}conformance-${randomBytes(6).toString('hex')}/`));
}

runBackendConformance('REST on rclone serve restic', async () => ({ backend: backend(), cleanup: async () => undefined }));

// Faults after the call (a lost reply) make the retry save again what is stored: the look-before-write path.
runBackendConformance('retry over REST on rclone serve restic, 20% of calls failing', async () => {
  const faulty = new FaultyBackend(backend(), { failRate: 0.2, shortReadRate: 0.1, seed: 13 });
  return { backend: new RetryBackend(faulty, { baseDelayMs: 1, maxDelayMs: 5 }), cleanup: async () => undefined };
});

describe('REST backend answers', () => {
  const cases: [string, number, Record<string, string>, { code: string; message: RegExp }, number][] = [
    ['a redirect is refused, naming where to (without credentials)', 301, { location: 'https://user:pw@elsewhere.example/repo/config' }, { code: 'BAD_INPUT', message: /^reading the config file at rest:http:\/\/u:\*\*\*@127\.0\.0\.1:\d+\/ failed: the server redirects \(301\) to https:\/\/elsewhere\.example\/repo\/config; use that location$/ }, 1],
    ['refused credentials are not retried', 403, {}, { code: 'BAD_INPUT', message: /refused access while reading the config file \(403\)/ }, 1],
    ['a server error is retried', 503, {}, { code: 'BACKEND_UNAVAILABLE', message: /^reading the config file at .* failed: the server answered 503 Service Unavailable$/ }, 4],
  ];
  for (const [name, status, headers, want, requests] of cases) {
    it(name, async () => {
      const s = await startAnsweringServer(status, headers, 'no');
      try {
        const b = new RetryBackend(new RestBackend(parseRestLocation(s.url.replace('http://', 'http://u:pw@'))), { retries: 3, baseDelayMs: 1 });
        const err = await b.exists().catch((e: unknown) => e as { code: string; message: string });
        expect(err).toMatchObject({ code: want.code, message: expect.stringMatching(want.message) });
        expect(JSON.stringify(err)).not.toMatch(/pw/);
        expect(s.requests()).toBe(requests);
      } finally {
        await s.close();
      }
    });
  }
});
