/**
 * A real S3 server (s3rver from npm) for tests, in a child process on a free loopback port.
 * Quirks this project knows about (see docs): clients must set requestChecksumCalculation and
 * responseChecksumValidation to WHEN_REQUIRED and use path-style addressing; list without a delimiter;
 * no conditional writes, no multipart abort. s3rver would also show objects while they upload;
 * the launcher (s3rver-main.mjs) makes uploads appear whole, as S3 does.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { filterSdkNodeWarning } from '../../src/util/sdk-warning.js';
import { ROOT, runCommand, tempDir, type RunResult } from './tools.js';

export interface S3Server {
  endpoint: string;
  port: number;
  /** Folder where s3rver keeps its objects. */
  directory: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Environment for clients (AWS SDK, Cairn) that reads credentials from the usual variables. */
  env: NodeJS.ProcessEnv;
  /** Environment for rclone with an `s3rver:` remote (AWS_CA_BUNDLE removed: it breaks plain http). */
  rcloneEnv: NodeJS.ProcessEnv;
  /** Runs rclone with that environment, e.g. `rclone(['copy', '--fast-list', 's3rver:cairn/repo', dir])`. */
  rclone(args: string[]): Promise<RunResult>;
  stop(): Promise<void>;
}

export async function startS3rver(buckets: string[] = ['cairn']): Promise<S3Server> {
  const directory = await tempDir('cairn-s3rver-');
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', path.join(ROOT, 'test/support/s3rver-main.mjs'), directory, ...buckets], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout! });
    rl.once('line', (line) => resolve((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`s3rver exited ${code} before listening`)));
    child.once('error', reject);
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const accessKeyId = 'S3RVER';
  const secretAccessKey = 'S3RVER';
  const env = { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: 'us-east-1' };
  const rcloneEnv: NodeJS.ProcessEnv = {
    ...process.env,
    RCLONE_CONFIG: '/dev/null',
    RCLONE_CONFIG_S3RVER_TYPE: 's3',
    RCLONE_CONFIG_S3RVER_PROVIDER: 'Other',
    RCLONE_CONFIG_S3RVER_ENDPOINT: endpoint,
    RCLONE_CONFIG_S3RVER_ACCESS_KEY_ID: accessKeyId,
    RCLONE_CONFIG_S3RVER_SECRET_ACCESS_KEY: secretAccessKey,
    RCLONE_CONFIG_S3RVER_FORCE_PATH_STYLE: 'true',
  };
  delete rcloneEnv.AWS_CA_BUNDLE;
  return {
    endpoint,
    port,
    directory,
    accessKeyId,
    secretAccessKey,
    env,
    rcloneEnv,
    rclone: (args) => runCommand('rclone', args, { env: rcloneEnv, exactEnv: true }),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}

/** An AWS SDK client for the server, with the settings s3rver needs (and without the SDK's Node 20 warning). */
export function s3rverClient(s3: S3Server): S3Client {
  filterSdkNodeWarning();
  return new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
