/**
 * s3rver and `rclone serve restic` side by side for end-to-end tests of remote repositories, with
 * repository paths for Cairn and restic on them.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { expect } from 'vitest';
import { startRestServer, type RestServer } from './rest-server.js';
import { startS3rver, type S3Server } from './s3rver.js';
import { makeRepoPaths, ok, tempDir, type RunResult, type TestRepo } from './tools.js';

export interface Remotes {
  /** s3rver with the bucket `cairn`. */
  s3: S3Server;
  /** `rclone serve restic` over `restDir`, where each repository path is a restic repository folder. */
  rest: RestServer;
  restDir: string;
  /** Paths for a repository at `location`, shared by Cairn and restic, with the S3 credentials in the environment. */
  repo(location: string): Promise<TestRepo>;
  /** An AWS SDK client for s3rver, to look at what was stored; destroy it after use. */
  client(): S3Client;
  stop(): Promise<void>;
}

export async function startRemotes(): Promise<Remotes> {
  const restDir = await tempDir('cairn-rest-');
  const [s3, rest] = await Promise.all([startS3rver(['cairn']), startRestServer(restDir)]);
  return {
    s3,
    rest,
    restDir,
    repo: async (location) => {
      const r = await makeRepoPaths();
      return { ...r, env: { ...r.env, ...s3.env, CAIRN_REPOSITORY: location, RESTIC_REPOSITORY: location } };
    },
    client: () =>
      new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } }),
    stop: async () => {
      await Promise.all([s3.stop(), rest.stop()]);
    },
  };
}

/** A Cairn run that succeeded and printed no warning (the AWS SDK's Node version notice included). */
export function quietOk(r: RunResult, what: string): RunResult {
  ok(r, what);
  expect(r.stderr, what).not.toMatch(/Warning/);
  return r;
}
