/** A daemon in the test's own process, on a free port, with fast retries and a short shutdown grace. */
import fs from 'node:fs/promises';
import path from 'node:path';
import pino from 'pino';
import { Daemon } from '../../src/service/daemon.js';

export async function startInProcessDaemon(base: string): Promise<Daemon> {
  const configFile = path.join(base, 'cairn.json');
  await fs.writeFile(configFile, JSON.stringify({ retryBaseMs: 50, shutdownGraceSeconds: 1 }));
  return Daemon.start({ configFile, dataDir: path.join(base, 'data'), listen: '127.0.0.1:0', logger: pino({ level: 'silent' }) });
}
