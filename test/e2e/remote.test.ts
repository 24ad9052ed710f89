/**
 * Remote repositories end to end: Cairn on s3rver and on `rclone serve restic`, read by restic,
 * and restic's repositories read by Cairn there. restic's own S3 client cannot talk to s3rver
 * (it sends aws-chunked bodies that s3rver stores undecoded), so repositories travel between
 * s3rver and a local folder with `rclone copy --fast-list`; restic talks to the REST server itself.
 */
import { HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRestServer, HAVE_RCLONE, type RestServer } from '../support/rest-server.js';
import { quietOk as quiet, startRemotes, type Remotes } from '../support/remotes.js';
import type { S3Server } from '../support/s3rver.js';
import { HAVE_RESTIC, cairn, ok, restic, tempDir, type TestRepo } from '../support/tools.js';
import { compareTrees, describeTree, makeOddTree } from '../support/trees.js';

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe.runIf(HAVE_RESTIC && HAVE_RCLONE)('remote repositories', () => {
  let remotes: Remotes;
  let s3: S3Server;
  let rest: RestServer;
  let restDir: string;
  let src: string;
  let closeTree: () => Promise<void>;
  let want: Awaited<ReturnType<typeof describeTree>>;

  beforeAll(async () => {
    remotes = await startRemotes();
    ({ s3, rest, restDir } = remotes);
    src = path.join(await tempDir(), 'src');
    closeTree = (await makeOddTree(src)).close;
    want = await describeTree(src, { skipSockets: true });
  });
  afterAll(async () => {
    await Promise.all([remotes?.stop(), closeTree?.()]);
  });

  const remoteRepo = (location: string): Promise<TestRepo> => remotes.repo(location);

  async function expectRestored(target: string, what: string): Promise<void> {
    // Node sets times through a double, so compare them to the microsecond.
    expect(compareTrees(want, await describeTree(path.join(target, src), { skipSockets: true }), 1000n), what).toEqual([]);
  }

  it('Cairn backs up to s3rver (creating the bucket); restic checks and restores the copy byte for byte', async () => {
    const location = `s3:${s3.endpoint}/made-by-cairn/nested/repo`;
    const repo = await remoteRepo(location);
    const init = quiet(await cairn(repo, ['init']), 'cairn init');
    expect(init.out).toContain(`at ${location}`);
    quiet(await cairn(repo, ['backup', src]), 'cairn backup');

    const client = remotes.client();
    const keys = ((await client.send(new ListObjectsV2Command({ Bucket: 'made-by-cairn' }))).Contents ?? []).map((o) => o.Key!.replace(/[0-9a-f]{64}$/, 'ID').replace(/\/[0-9a-f]{2}\//, '/XX/'));
    client.destroy();
    expect([...new Set(keys)].sort()).toEqual(['nested/repo/config', 'nested/repo/data/XX/ID', 'nested/repo/index/ID', 'nested/repo/keys/ID', 'nested/repo/snapshots/ID']);

    const local = path.join(await tempDir(), 'copy');
    const copy = await s3.rclone(['copy', '--fast-list', 's3rver:made-by-cairn/nested/repo', local]);
    expect(copy.stderr).toBe('');
    expect(copy.code).toBe(0);
    const localRepo = { ...repo, env: { ...repo.env, RESTIC_REPOSITORY: local } };
    expect(ok(await restic(localRepo, ['check', '--read-data']), 'restic check').out).toContain('no errors were found');
    const target = await tempDir();
    ok(await restic(localRepo, ['restore', 'latest', '--target', target]), 'restic restore');
    await expectRestored(target, 'restic restore of the copy');
  });

  it('restic backs up locally; Cairn restores the copy on s3rver byte for byte and checks it', async () => {
    const local = path.join(await tempDir(), 'by-restic');
    const repo = await remoteRepo(`s3:${s3.endpoint}/cairn/from-restic`);
    const localRepo = { ...repo, env: { ...repo.env, RESTIC_REPOSITORY: local } };
    ok(await restic(localRepo, ['init']), 'restic init');
    ok(await restic(localRepo, ['backup', src]), 'restic backup');
    const copy = await s3.rclone(['copy', '--fast-list', local, 's3rver:cairn/from-restic']);
    expect(copy.code, copy.stderr).toBe(0);

    const target = await tempDir();
    quiet(await cairn(repo, ['restore', 'latest', '--target', target]), 'cairn restore');
    await expectRestored(target, 'cairn restore from s3rver');
    expect(quiet(await cairn(repo, ['check', '--read-data']), 'cairn check').out).toContain('no errors were found');
  });

  it('Cairn backs up to rclone serve restic; restic checks and restores it over REST byte for byte', async () => {
    const location = `rest:${rest.url}from-cairn/`;
    const repo = await remoteRepo(location);
    quiet(await cairn(repo, ['init']), 'cairn init');
    quiet(await cairn(repo, ['backup', src]), 'cairn backup');
    expect(ok(await restic(repo, ['check', '--read-data']), 'restic check').out).toContain('no errors were found');
    const target = await tempDir();
    ok(await restic(repo, ['restore', 'latest', '--target', target]), 'restic restore');
    await expectRestored(target, 'restic restore over REST');
    // The server's folder is a restic repository in the default layout.
    expect((await fs.readdir(path.join(restDir, 'from-cairn'))).sort()).toEqual(['config', 'data', 'index', 'keys', 'locks', 'snapshots']);
  });

  it('restic backs up to rclone serve restic; Cairn restores it over REST byte for byte and checks it', async () => {
    const repo = await remoteRepo(`rest:${rest.url}from-restic/`);
    ok(await restic(repo, ['init']), 'restic init');
    ok(await restic(repo, ['backup', src]), 'restic backup');
    const target = await tempDir();
    quiet(await cairn(repo, ['restore', 'latest', '--target', target]), 'cairn restore');
    await expectRestored(target, 'cairn restore over REST');
    expect(quiet(await cairn(repo, ['check', '--read-data']), 'cairn check').out).toContain('no errors were found');
  });

  it('passes -o s3.storage-class to data files only, and refuses unknown options', async () => {
    const repo = await remoteRepo(`s3:${s3.endpoint}/cairn/storage-class`);
    quiet(await cairn(repo, ['-o', 's3.storage-class=STANDARD_IA', 'init']), 'cairn init');
    quiet(await cairn(repo, ['-o', 's3.storage-class=STANDARD_IA', 'backup', path.join(src, 'plain.txt')]), 'cairn backup');
    const client = remotes.client();
    const classes = new Map<string, string>();
    for (const o of (await client.send(new ListObjectsV2Command({ Bucket: 'cairn', Prefix: 'storage-class/' }))).Contents ?? []) {
      const head = await client.send(new HeadObjectCommand({ Bucket: 'cairn', Key: o.Key }));
      classes.set(o.Key!.split('/')[1], head.StorageClass ?? 'STANDARD');
    }
    client.destroy();
    expect(Object.fromEntries(classes)).toEqual({ config: 'STANDARD', data: 'STANDARD_IA', index: 'STANDARD', keys: 'STANDARD', snapshots: 'STANDARD' });

    const bad = await cairn(repo, ['-o', 's3.no-such-option=1', 'snapshots']);
    expect([bad.code, bad.stderr]).toEqual([1, 'Fatal: unknown option s3.no-such-option; the s3 backend knows s3.bucket-lookup, s3.storage-class, s3.sse, s3.sse-kms-key-id, s3.region\n']);
  });

  it('takes S3 credentials from the profile AWS_PROFILE names', async () => {
    const home = await tempDir();
    await fs.mkdir(path.join(home, '.aws'));
    await fs.writeFile(path.join(home, '.aws', 'credentials'), `[default]\naws_access_key_id = NOT-A-KEY\naws_secret_access_key = x\n\n[backup]\naws_access_key_id = ${s3.accessKeyId}\naws_secret_access_key = ${s3.secretAccessKey}\n`);
    const repo = await remoteRepo(`s3:${s3.endpoint}/cairn/from-profile`);
    const env = { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', HOME: home, AWS_PROFILE: 'backup' };
    quiet(await cairn(repo, ['init'], { env }), 'cairn init');
    expect(quiet(await cairn(repo, ['snapshots', '--json'], { env }), 'cairn snapshots').out).toBe('[]\n');
    const fallback = await cairn(repo, ['snapshots'], { env: { ...env, AWS_PROFILE: '' } });
    expect([fallback.code, fallback.stderr]).toEqual([1, expect.stringMatching(/refused access while reading the config file \(403\)/)]);
  });

  it('answers a missing repository with exit 10, and wrong credentials or an unreachable server with exit 1, quickly and without secrets', async () => {
    const repo = await remoteRepo(`s3:${s3.endpoint}/cairn/nothing-here`);
    const timed = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const start = Date.now();
      const r = await cairn(repo, args, { env });
      return { ...r, seconds: (Date.now() - start) / 1000 };
    };
    const missing = [
      await timed(['snapshots']),
      await timed(['snapshots'], { CAIRN_REPOSITORY: `s3:${s3.endpoint}/no-such-bucket/repo` }),
      await timed(['snapshots'], { CAIRN_REPOSITORY: `rest:${rest.url}nothing-here/` }),
    ];
    for (const r of missing) {
      expect(r.code, r.stderr).toBe(10);
      expect(r.stderr).toMatch(/^Fatal: no repository at (s3|rest):http:\/\/127\.0\.0\.1:\d+\/.*: the config file is missing \(run "cairn init" first\)\n$/);
    }

    const wrongKey = await timed(['snapshots'], { AWS_ACCESS_KEY_ID: 'NOT-A-KEY', AWS_SECRET_ACCESS_KEY: 'very-secret-value' });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/^Fatal: s3:http:\/\/127\.0\.0\.1:\d+\/cairn\/nothing-here refused access while reading the config file \(403\): check the credentials/);
    expect(wrongKey.stderr).not.toMatch(/very-secret-value/);

    const noCredentials = await timed(['snapshots'], { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '', HOME: await tempDir() });
    expect([noCredentials.code, noCredentials.stderr]).toEqual([
      1,
      `Fatal: no S3 credentials found for s3:${s3.endpoint}/cairn/nothing-here: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in ~/.aws/credentials\n`,
    ]);

    const port = await closedPort();
    const unreachable = [
      await timed(['snapshots'], { CAIRN_REPOSITORY: `s3:http://127.0.0.1:${port}/cairn/repo` }),
      await timed(['init'], { CAIRN_REPOSITORY: `rest:http://user:very-secret-value@127.0.0.1:${port}/repo/` }),
    ];
    expect(unreachable.map((r) => [r.code, r.stderr])).toEqual([
      [1, `Fatal: cannot reach s3:http://127.0.0.1:${port}/cairn/repo while reading the config file: connection refused\n`],
      [1, `Fatal: cannot reach rest:http://user:***@127.0.0.1:${port}/repo/ while reading the config file: connection refused\n`],
    ]);
    for (const r of [...missing, wrongKey, noCredentials, ...unreachable]) expect(r.seconds, r.stderr).toBeLessThan(15);
  });

  it('keeps REST credentials out of every message, and says when the server refuses them', async () => {
    const guarded = await startRestServer(await tempDir('cairn-rest-auth-'), ['--user', 'alice', '--pass', 'open sesame']);
    try {
      const url = new URL(guarded.url);
      const repo = await remoteRepo(`rest:http://alice:open%20sesame@${url.host}/repo/`);
      const init = quiet(await cairn(repo, ['init']), 'cairn init');
      expect(init.out).toContain(`at rest:http://alice:***@${url.host}/repo/`);
      quiet(await cairn(repo, ['backup', path.join(src, 'plain.txt')]), 'cairn backup');
      const wrong = await cairn(repo, ['snapshots'], { env: { CAIRN_REPOSITORY: `rest:http://alice:guess@${url.host}/repo/` } });
      expect([wrong.code, wrong.stderr]).toEqual([
        1,
        `Fatal: rest:http://alice:***@${url.host}/repo/ refused access while reading the config file (401): check the user name and password in the location (or CAIRN_REST_USERNAME and CAIRN_REST_PASSWORD)\n`,
      ]);
      for (const r of [init, wrong]) expect(r.out + r.stderr).not.toMatch(/sesame|guess/);
    } finally {
      await guarded.stop();
    }
  });
});
