import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startChildServer, type ChildServer } from '../../../util/child-server.js';
import { uploadArchive } from './upload.js';

// A receiver in its own process (as in real life: the answer and the client's writes race on the
// wire, not inside one event loop) that refuses every upload before reading its body, as Node's
// http server does by default: it drops the rest of a kept-alive request, and closes a request
// sent with `Connection: close` at once, which resets the connection under its answer.
const REFUSER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  res.writeHead(409, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: { code: 'CONFLICT', message: 'already have it' } }));
});
server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port));
`;

describe('db-dump upload', () => {
  let dir: string;
  let refuser: ChildServer;
  let url: string;

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-upload-'));
    refuser = await startChildServer(process.execPath, ['-e', REFUSER], 'stdout', /^port (\d+)$/);
    url = `http://127.0.0.1:${refuser.match[1]}`;
  });

  afterAll(async () => {
    await refuser.stop();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('reads a refusal that comes before the body is sent, every time, and does not retry it', async () => {
    const file = path.join(dir, 'big.sql.zip');
    await fs.writeFile(file, randomBytes(8 << 20));
    // With a connection closed after each request this lost the answer to EPIPE or ECONNRESET
    // (then retried a 4xx) about once in ten attempts.
    const outcomes = new Map<string, number>();
    for (let i = 0; i < 40; i++) {
      const retried: string[] = [];
      const err = await uploadArchive(url, 'shop', file, { retries: 2, baseDelayMs: 1, onRetry: (_, reason) => retried.push(reason) }).then(
        () => new Error('uploaded'),
        (e: Error) => e,
      );
      const outcome = `${err.message}${retried.length ? ` (retried after ${retried.join(', ')})` : ''}`;
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    expect(Object.fromEntries(outcomes)).toEqual({ [`upload to ${url}/shop failed: HTTP 409: already have it`]: 40 });
  });
});
