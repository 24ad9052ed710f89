import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import fs, { watch } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnsweringServer } from '../../test/support/answering-server.js';
import { expectFailedUploadsKeepFileClosed } from '../../test/support/failed-uploads.js';
import { startS3rver, type S3Server } from '../../test/support/s3rver.js';
import { mapLimit } from '../util/limit.js';
import type { Handle } from './backend.js';
import { runBackendConformance } from './conformance.js';
import { FaultyBackend } from './faulty.js';
import { RetryBackend } from './retry.js';
import { parseS3Location, S3Backend } from './s3.js';

let server: S3Server;
beforeAll(async () => {
  server = await startS3rver(['cairn']);
});
afterAll(async () => server?.stop());

function backend(bucketAndPrefix: string): S3Backend {
  return new S3Backend(parseS3Location(`${server.endpoint}/${bucketAndPrefix}`), { credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
}

function unique(what: string): string {
  return `${what}-${randomBytes(6).toString('hex')}`;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
}

runBackendConformance('S3 on s3rver', async () => {
  const backendUnderTest = backend(`cairn/${unique('conformance')}/repo`);
  return { backend: backendUnderTest, cleanup: async () => undefined };
});

// Faults after the call (a lost reply) make the retry save again what is stored: the look-before-write path.
runBackendConformance('retry over S3 on s3rver, 20% of calls failing', async () => {
  const faulty = new FaultyBackend(backend(`cairn/${unique('faulty')}/repo`), { failRate: 0.2, shortReadRate: 0.1, seed: 11 });
  return { backend: new RetryBackend(faulty, { baseDelayMs: 1, maxDelayMs: 5 }), cleanup: async () => undefined };
});

describe('S3 backend', () => {
  it('reads a missing bucket as no repository, names it when a write needs it, and create() makes it', async () => {
    const bucket = unique('bucket');
    const b = backend(`${bucket}/repo`);
    try {
      const h: Handle = { type: 'data', name: 'ab'.repeat(32) };
      expect(await b.exists()).toBe(false);
      for await (const f of b.list('data')) throw new Error(`listed ${f.name}`);
      const err = await b.save(h, Buffer.from('x')).catch((e: unknown) => e as { code: string; message: string });
      expect(err).toMatchObject({ code: 'REPO_NOT_FOUND', message: `the bucket "${bucket}" does not exist at s3:${server.endpoint}/${bucket}/repo (cairn init creates it)` });
      await b.create();
      await b.save(h, Buffer.from('x'));
      expect((await b.load(h)).toString()).toBe('x');
    } finally {
      await b.close();
    }
  });

  it('lists past the first page of 1000 keys, without a delimiter, and only keys laid out as restic lays them out', async () => {
    const prefix = unique('paged');
    const b = backend(`cairn/${prefix}`);
    const client = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
    try {
      const ids = Array.from({ length: 1234 }, () => randomBytes(32).toString('hex'));
      const strays = ['data/README', `data/00/${'11'.repeat(32)}`, `data/${'22'.repeat(32)}`, `data/33/${'33'.repeat(32)}.tmp`, `data/44/${'44'.repeat(31)}`, `snapshots/${'55'.repeat(32)}`];
      const keys = [...ids.map((id) => `data/${id.slice(0, 2)}/${id}`), ...strays];
      await mapLimit(keys, 32, (key, i) => client.send(new PutObjectCommand({ Bucket: 'cairn', Key: `${prefix}/${key}`, Body: Buffer.alloc(i % 7) })));
      const listed = new Map<string, number>();
      for await (const f of b.list('data')) listed.set(f.name, f.size);
      expect(new Map([...listed].sort())).toEqual(new Map(ids.map((id, i) => [id, i % 7] as const).sort()));
    } finally {
      client.destroy();
      await b.close();
    }
  });

  it('stops a multipart upload aborted part way; nothing is listed, and the file can be saved again', async () => {
    const bucket = unique('abort');
    const b = backend(`${bucket}/repo`);
    try {
      await b.create();
      const h: Handle = { type: 'data', name: 'ef'.repeat(32) };
      const data = randomBytes(64 * 1024 * 1024);
      const ac = new AbortController();
      // s3rver makes its uploads folder when a multipart upload begins: abort then, while the parts travel.
      const watcher = watch(path.join(server.directory, bucket), (_event, name) => {
        if (name === '._S3rver_uploads') ac.abort();
      });
      try {
        expect(await codeOf(b.save(h, data, ac.signal))).toBe('INTERRUPTED');
      } finally {
        watcher.close();
      }
      expect(ac.signal.aborted).toBe(true);
      for await (const f of b.list('data')) throw new Error(`listed ${f.name}`);
      expect(await codeOf(b.stat(h))).toBe('NOT_FOUND');
      await b.save(h, data);
      expect((await b.load(h)).equals(data)).toBe(true);
    } finally {
      await b.close();
    }
  });
});

describe('S3 uploads of local files', () => {
  it('stream a file past the part size in parts, byte for byte, and take it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-s3-upload-'));
    const b = backend(`cairn/${unique('file')}/repo`);
    try {
      const file = path.join(dir, 'staged');
      const data = randomBytes(40 * 1024 * 1024 + 5);
      fs.writeFileSync(file, data);
      const h: Handle = { type: 'data', name: '5a'.repeat(32) };
      await b.saveFile(h, file);
      expect(fs.existsSync(file)).toBe(false);
      expect((await b.stat(h)).size).toBe(data.length);
      expect((await b.load(h)).equals(data)).toBe(true);
    } finally {
      await b.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leave the file in place and closed when the server refuses or cannot be reached', async () => {
    const make = (url: string) => new S3Backend(parseS3Location(`${url}bucket/repo`), { credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'very-secret-value' } });
    const slowDown = { status: 503, headers: { 'content-type': 'application/xml' }, body: '<Error><Code>SlowDown</Code></Error>' };
    await expectFailedUploadsKeepFileClosed(make, slowDown, { code: 'BACKEND_UNAVAILABLE', message: expect.stringMatching(/answered 503 SlowDown$/) }, /cannot reach/);
  });

});

describe('S3 backend answers', () => {
  const s3Error = (code: string) => `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code} happened</Message><RequestId>1</RequestId></Error>`;
  const cases: [string, number, string, { code: string; message: RegExp }, number][] = [
    ['throttling is retried', 503, 'SlowDown', { code: 'BACKEND_UNAVAILABLE', message: /^listing data files at s3:http:\/\/127\.0\.0\.1:\d+\/bucket\/repo failed: the server answered 503 SlowDown$/ }, 4],
    ['a server error is retried', 500, 'InternalError', { code: 'BACKEND_UNAVAILABLE', message: /answered 500 InternalError$/ }, 4],
    ['a refused signature is not retried', 403, 'SignatureDoesNotMatch', { code: 'BAD_INPUT', message: /refused access while listing data files \(403 SignatureDoesNotMatch\): check the credentials/ }, 1],
    ['a bucket in another region is not retried', 301, 'PermanentRedirect', { code: 'BAD_INPUT', message: /^the bucket "bucket" is in another region than the one used; set AWS_DEFAULT_REGION or -o s3.region$/ }, 1],
    ['a full store is not retried', 507, 'XMinioStorageFull', { code: 'NO_SPACE', message: /^s3:http:\/\/127\.0\.0\.1:\d+\/bucket\/repo has no room left while listing data files: the server answered 507 XMinioStorageFull; free space there \(or raise the bucket's quota\) and run the command again$/ }, 1],
    ['a bucket over its quota is not retried, and not taken for refused credentials', 403, 'QuotaExceeded', { code: 'NO_SPACE', message: /has no room left while listing data files: the server answered 403 QuotaExceeded;/ }, 1],
    ['another refusal is not retried, and quoted', 400, 'InvalidArgument', { code: 'BAD_INPUT', message: /answered 400 InvalidArgument: InvalidArgument happened$/ }, 1],
  ];
  for (const [name, status, code, want, requests] of cases) {
    it(name, async () => {
      const s = await startAnsweringServer(status, { 'content-type': 'application/xml' }, s3Error(code));
      const inner = new S3Backend(parseS3Location(`${s.url}bucket/repo`), { credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'very-secret-value' } });
      const b = new RetryBackend(inner, { retries: 3, baseDelayMs: 1 });
      try {
        const err = await (async () => {
          for await (const f of b.list('data')) throw new Error(`listed ${f.name}`);
        })().catch((e: unknown) => e as { code: string; message: string });
        expect(err).toMatchObject({ code: want.code, message: expect.stringMatching(want.message) });
        expect(JSON.stringify(err)).not.toMatch(/very-secret-value/);
        expect(s.requests()).toBe(requests);
      } finally {
        await b.close();
        await s.close();
      }
    });
  }
});
