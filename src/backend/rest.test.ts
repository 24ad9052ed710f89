import { afterAll, beforeAll } from 'vitest';
import { randomBytes } from 'node:crypto';
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
