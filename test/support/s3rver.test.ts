import { afterAll, beforeAll, expect, it } from 'vitest';
import { PutObjectCommand, ListObjectsV2Command, GetObjectCommand } from '@aws-sdk/client-s3';
import { s3rverClient, startS3rver, type S3Server } from './s3rver.js';
import { tempDir } from './tools.js';
import fs from 'node:fs/promises';
import path from 'node:path';

let s3: S3Server;
beforeAll(async () => {
  s3 = await startS3rver(['bucket']);
});
afterAll(async () => s3?.stop());

it('serves objects to the AWS SDK and to rclone', async () => {
  const client = s3rverClient(s3);
  await client.send(new PutObjectCommand({ Bucket: 'bucket', Key: 'a/b/c.txt', Body: 'hello' }));
  const list = await client.send(new ListObjectsV2Command({ Bucket: 'bucket' }));
  expect(list.Contents?.map((o) => o.Key)).toEqual(['a/b/c.txt']);
  const got = await client.send(new GetObjectCommand({ Bucket: 'bucket', Key: 'a/b/c.txt' }));
  expect(await got.Body!.transformToString()).toBe('hello');
  const dest = await tempDir();
  const r = await s3.rclone(['copy', '--fast-list', 's3rver:bucket', dest]);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  expect(await fs.readFile(path.join(dest, 'a/b/c.txt'), 'utf8')).toBe('hello');
  client.destroy();
});
