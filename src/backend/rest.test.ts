import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnsweringServer } from '../../test/support/answering-server.js';
import { expectFailedUploadsKeepFileClosed } from '../../test/support/failed-uploads.js';
import { startRestServer, type RestServer } from '../../test/support/rest-server.js';
import { loadRange } from './backend.js';
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
    // restic's rest-server answers 507 when its disk is full: retrying would only wait.
    ['a server out of room is not retried', 507, {}, { code: 'NO_SPACE', message: /^rest:http:\/\/u:\*\*\*@127\.0\.0\.1:\d+\/ has no room left while reading the config file: the server answered 507 Insufficient Storage; free space there \(or raise its quota\) and run the command again$/ }, 1],
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
  it('a server error whose text says the disk is full is not retried', async () => {
    const s = await startAnsweringServer(500, {}, 'write /srv/config: no space left on device');
    try {
      const b = new RetryBackend(new RestBackend(parseRestLocation(s.url)), { retries: 3, baseDelayMs: 1 });
      const err = await b.load({ type: 'config', name: '' }).catch((e: unknown) => e as { code: string; message: string });
      expect(err).toMatchObject({ code: 'NO_SPACE', message: expect.stringMatching(/has no room left while loading the config file: the server answered 500 Internal Server Error \(write \/srv\/config: no space left on device\); free space there/) });
      expect(s.requests()).toBe(1);
    } finally {
      await s.close();
    }
  });
});

describe('REST loads into a caller\'s buffer', () => {
  const data = randomBytes(100_000);
  const id = 'ab'.repeat(32);
  // mode: 'ignore' answers every GET with the whole file (200); 'short' answers the range asked
  // for with a Content-Range that fits but sends fewer bytes and closes.
  async function serve(mode: 'ignore' | 'short'): Promise<{ url: string; close: () => Promise<void> }> {
    const server = http.createServer((req, res) => {
      const m = /bytes=(\d+)-(\d+)/.exec(req.headers.range ?? '');
      if (mode === 'ignore' || !m) return res.writeHead(200, { 'content-length': data.length }).end(data);
      const [from, to] = [Number(m[1]), Number(m[2])];
      res.writeHead(206, { 'content-range': `bytes ${from}-${to}/${data.length}`, 'content-length': to - from + 1 });
      res.write(data.subarray(from, from + 100));
      res.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, close: () => new Promise((r) => server.close(() => r())) };
  }

  it('gets the right bytes from a server that ignores ranges', async () => {
    const s = await serve('ignore');
    try {
      const into = Buffer.alloc(60_000, 7);
      const got = await loadRange(new RestBackend(parseRestLocation(s.url)), { type: 'data', name: id }, 1000, 50_000, into);
      expect(got.equals(data.subarray(1000, 51_000))).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('fails an answer cut short, and the retry wrapper tries again', async () => {
    const s = await serve('short');
    try {
      const into = Buffer.alloc(50_000);
      const err = await loadRange(new RestBackend(parseRestLocation(s.url)), { type: 'data', name: id }, 1000, 50_000, into).catch((e: unknown) => e as { code: string; message: string });
      expect(err).toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
      let retries = 0;
      const retrying = new RetryBackend(new RestBackend(parseRestLocation(s.url)), { retries: 2, baseDelayMs: 1, onRetry: () => retries++ });
      await expect(loadRange(retrying, { type: 'data', name: id }, 1000, 50_000, into)).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
      expect(retries).toBe(2);
    } finally {
      await s.close();
    }
  });
});

describe('REST uploads of local files', () => {
  it('leave the file in place and closed when the server refuses early or cannot be reached', async () => {
    await expectFailedUploadsKeepFileClosed((url) => new RestBackend(parseRestLocation(url)), { status: 503 }, { code: 'BACKEND_UNAVAILABLE' }, /cannot reach/);
  });
});
