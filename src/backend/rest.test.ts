import { afterAll, beforeAll } from 'vitest';
import { randomBytes } from 'node:crypto';
import { startRestServer, type RestServer } from '../../test/support/rest-server.js';
import { runBackendConformance } from './conformance.js';
import { parseRestLocation, RestBackend } from './rest.js';

let server: RestServer;
beforeAll(async () => {
  server = await startRestServer(':memory:');
});
afterAll(async () => server?.stop());

runBackendConformance('REST on rclone serve restic', async () => ({
  backend: new RestBackend(parseRestLocation(`${server.url}conformance-${randomBytes(6).toString('hex')}/`)),
  cleanup: async () => undefined,
}));
