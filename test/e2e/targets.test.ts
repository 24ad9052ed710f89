/**
 * Archive and mirror targets against a real S3 server (s3rver): what lands in the bucket is listed and compared
 * byte for byte with the source, and archives are checked with gzip, zstd, unzip and tar.
 */
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CairnError } from '../../src/errors.js';
import { runArchive, runMirror, type MirrorResult } from '../../src/targets/index.js';
import { checkWithTool, contentOf, makeTargetTree, tarListing, TOOLS_PRESENT, unpackFolderCopy } from '../support/archives.js';
import { s3rverClient, startS3rver, type S3Server } from '../support/s3rver.js';
import { ok, tempDir } from '../support/tools.js';
import { seededBytes } from '../support/trees.js';

const warnings: string[] = [];
process.on('warning', (w) => warnings.push(w.message));

let s3: S3Server;
let sdk: S3Client | undefined;
const savedEnv = { ...process.env };
beforeAll(async () => {
  expect(TOOLS_PRESENT).toBe(true);
  s3 = await startS3rver(['bucket']);
  // Cairn takes credentials from the AWS SDK's default chain, as users set them.
  Object.assign(process.env, s3.env);
});
afterAll(async () => {
  sdk?.destroy();
  await s3?.stop();
  process.env = savedEnv;
});

/** The test's own client, made after Cairn's first S3 use so that the SDK's start-up warning is Cairn's to hide. */
function client(): S3Client {
  sdk ??= s3rverClient(s3);
  return sdk;
}

/** Every object under `prefix/`, by key relative to it, with its bytes. */
async function bucket(prefix: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  let token: string | undefined;
  do {
    const page = await client().send(new ListObjectsV2Command({ Bucket: 'bucket', Prefix: `${prefix}/`, ContinuationToken: token }));
    for (const o of page.Contents ?? []) {
      const got = await client().send(new GetObjectCommand({ Bucket: 'bucket', Key: o.Key }));
      out.set(o.Key!.slice(prefix.length + 1), Buffer.from(await got.Body!.transformToByteArray()));
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return out;
}

/** What a mirror of `root` must hold: each file's bytes under its path, and `dir/` (empty) for each empty folder. */
async function expectedMirror(root: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const tree = await contentOf(root);
  for (const [p, kind] of Object.entries(tree)) {
    if (kind.startsWith('file')) out.set(p, await fs.readFile(path.join(root, p)));
    else if (kind === 'dir' && !Object.keys(tree).some((q) => q.startsWith(`${p}/`))) out.set(`${p}/`, Buffer.alloc(0));
  }
  return out;
}

/** The mirror's objects (without its manifest and trash) equal the folder, byte for byte. */
async function expectMirrorOf(prefix: string, root: string): Promise<void> {
  const objects = await bucket(prefix);
  expect(objects.has('.cairn-mirror.json')).toBe(true);
  const mirrored = new Map([...objects].filter(([k]) => k !== '.cairn-mirror.json' && !k.startsWith('.cairn-trash/')));
  const expected = await expectedMirror(root);
  expect([...mirrored.keys()].sort()).toEqual([...expected.keys()].sort());
  for (const [k, data] of expected) expect(mirrored.get(k)!.equals(data), k).toBe(true);
}

function counts(r: MirrorResult) {
  return { uploaded: r.uploaded, deleted: r.deleted, moved: r.moved, trashed: r.trashed };
}

describe('mirror to S3', () => {
  it('carries creates, changes, renames, moves and deletes, renames as server-side copies', async () => {
    const src = await tempDir('cairn-mirror-src-');
    await makeTargetTree(src);
    const cfg = { kind: 'mirror' as const, dest: `s3:${s3.endpoint}/bucket/mirror` };
    const first = await runMirror(cfg, { path: src });
    expect(counts(first)).toEqual({ uploaded: 6, deleted: 0, moved: 0, trashed: 0 });
    await expectMirrorOf('mirror', src);

    const again = await runMirror(cfg, { path: src });
    expect(counts(again)).toEqual({ uploaded: 0, deleted: 0, moved: 0, trashed: 0 });
    expect(again.bytes).toBe(0);

    await fs.rename(path.join(src, 'sub/deeper/c.bin'), path.join(src, 'sub/deeper/c-renamed.bin'));
    await fs.mkdir(path.join(src, 'other/place'), { recursive: true });
    await fs.rename(path.join(src, 'sub/b.txt'), path.join(src, 'other/place/b.txt'));
    await fs.rm(path.join(src, 'a.txt'));
    await fs.rm(path.join(src, 'empty-dir'), { recursive: true });
    await fs.writeFile(path.join(src, 'unicode-äöü-日本語-😀.txt'), 'changed ✓✓\n');
    await fs.writeFile(path.join(src, 'other/new.txt'), 'new\n');
    await fs.mkdir(path.join(src, 'now-empty'));
    await fs.mkdir(path.join(src, 'ünï code'));
    await fs.rename(path.join(src, `${'long-'.repeat(30)}name.txt`), path.join(src, 'ünï code/коротко & 100%.txt'));
    const r = await runMirror(cfg, { path: src });
    // The renamed and moved files (1.7 MB) were moved in the bucket, not uploaded again.
    expect(counts(r)).toEqual({ uploaded: 2, deleted: 1, moved: 3, trashed: 0 });
    expect(r.bytes).toBe(Buffer.byteLength('changed ✓✓\n') + 4);
    await expectMirrorOf('mirror', src);
    expect(warnings.filter((w) => w.includes('NodeVersionSupportWarning'))).toEqual([]);
  });

  it('keeps replaced and deleted versions in the trash, expires them, and follows watch-mode paths', async () => {
    const src = await tempDir('cairn-mirror-src-');
    await makeTargetTree(src);
    const cfg = { kind: 'mirror' as const, dest: `s3:${s3.endpoint}/bucket/trashed`, trash: { keep: { age: '3d' } } };
    const t0 = new Date('2026-11-20T10:00:00Z');
    const day = 86_400_000;
    await runMirror(cfg, { path: src }, { now: t0 });
    await fs.writeFile(path.join(src, 'a.txt'), 'second\n');
    const changed = await runMirror(cfg, { path: src }, { now: new Date(t0.getTime() + day), changedPaths: [path.join(src, 'a.txt')] });
    expect(counts(changed)).toEqual({ uploaded: 1, deleted: 0, moved: 0, trashed: 1 });
    await fs.rm(path.join(src, 'sub'), { recursive: true });
    const removed = await runMirror(cfg, { path: src }, { now: new Date(t0.getTime() + 3 * day), changedPaths: [path.join(src, 'sub')] });
    expect(counts(removed)).toEqual({ uploaded: 0, deleted: 2, moved: 0, trashed: 2 });
    let objects = await bucket('trashed');
    expect(objects.get('.cairn-trash/2026-11-21T10-00-00Z/a.txt')?.toString()).toBe('alpha\n');
    expect(objects.get('.cairn-trash/2026-11-23T10-00-00Z/sub/b.txt')?.length).toBe(200_000);
    await expectMirrorOf('trashed', src);

    const later = await runMirror(cfg, { path: src }, { now: new Date(t0.getTime() + 4.5 * day) });
    expect(later.trashRemoved).toEqual(['2026-11-21T10-00-00Z']);
    objects = await bucket('trashed');
    expect([...objects.keys()].filter((k) => k.startsWith('.cairn-trash/')).sort()).toEqual([
      '.cairn-trash/2026-11-23T10-00-00Z/sub/b.txt',
      '.cairn-trash/2026-11-23T10-00-00Z/sub/deeper/c.bin',
    ]);
  });

  it('fails quickly and clearly when the endpoint is unreachable, deleting nothing', async () => {
    const src = await tempDir('cairn-mirror-src-');
    await makeTargetTree(src);
    const port = await closedPort();
    const started = Date.now();
    const err = await runMirror({ kind: 'mirror', dest: `s3:http://127.0.0.1:${port}/bucket/x` }, { path: src }).catch((e: unknown) => e);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(err).toBeInstanceOf(CairnError);
    expect((err as CairnError).code).toBe('BACKEND_UNAVAILABLE');
    expect((err as CairnError).message).toBe(`cannot reach S3 bucket "bucket" at http://127.0.0.1:${port} (ECONNREFUSED): check the URL and that the server is running`);
    expect(Object.keys(await contentOf(src))).toHaveLength(9);
    const archived = await runArchive({ kind: 'archive', dest: `s3:http://127.0.0.1:${port}/bucket/x`, codec: 'gzip' }, [{ path: src }], {}).catch((e: unknown) => e);
    expect((archived as CairnError).code).toBe('BACKEND_UNAVAILABLE');
    const noBucket = await runMirror({ kind: 'mirror', dest: `s3:${s3.endpoint}/no-such-bucket` }, { path: src }).catch((e: unknown) => e);
    expect((noBucket as CairnError).message).toMatch(/S3 bucket "no-such-bucket" at .* does not exist/);
    // A copy larger than one part fails at its first part, and the reading side stops with it.
    await fs.writeFile(path.join(src, 'big.bin'), seededBytes(12, 20 * 1024 * 1024));
    const big = await runArchive({ kind: 'archive', dest: `s3:${s3.endpoint}/no-such-bucket/x`, codec: 'gzip' }, [{ path: src }], {}).catch((e: unknown) => e);
    expect((big as CairnError).message).toMatch(/S3 bucket "no-such-bucket" at .* does not exist/);
  });
});

describe('archive to S3', () => {
  it.each(['gzip', 'zstd', 'zip'] as const)('writes %s copies that the real tools accept, and retention removes the old ones', async (codec) => {
    const src = await tempDir('cairn-archive-src-');
    const folder = path.join(src, 'site');
    await makeTargetTree(folder);
    // Larger than a multipart part, so the upload goes up in parts.
    await fs.writeFile(path.join(folder, 'big.bin'), seededBytes(9, 17 * 1024 * 1024 + 5));
    const file = path.join(src, 'dump.sql');
    await fs.writeFile(file, 'INSERT INTO t VALUES (1);\n'.repeat(5000));
    const cfg = { kind: 'archive' as const, dest: `s3:${s3.endpoint}/bucket/archives-${codec}/daily`, codec, keep: { count: 2 } };
    const day = 86_400_000;
    const t0 = new Date('2026-11-20T08:00:00Z');
    for (let d = 0; d < 2; d++) await runArchive(cfg, [{ path: file }, { path: folder }], { now: new Date(t0.getTime() + d * day) });
    const r = await runArchive(cfg, [{ path: file }, { path: folder }], { now: new Date(t0.getTime() + 2 * day) });
    const ext = codec === 'zip' ? ['zip', 'zip'] : codec === 'gzip' ? ['gz', 'tar.gz'] : ['zst', 'tar.zst'];
    expect(r.written).toEqual([`dump.sql.2026-11-22T08-00-00Z.${ext[0]}`, `site.2026-11-22T08-00-00Z.${ext[1]}`]);
    expect(r.removed).toEqual([`dump.sql.2026-11-20T08-00-00Z.${ext[0]}`, `site.2026-11-20T08-00-00Z.${ext[1]}`]);
    const keys = [...(await bucket(`archives-${codec}/daily`)).keys()].sort();
    expect(keys).toEqual([
      `dump.sql.2026-11-21T08-00-00Z.${ext[0]}`,
      `dump.sql.2026-11-22T08-00-00Z.${ext[0]}`,
      `site.2026-11-21T08-00-00Z.${ext[1]}`,
      `site.2026-11-22T08-00-00Z.${ext[1]}`,
    ]);

    const down = await tempDir('cairn-archive-down-');
    const copied = await s3.rclone(['copy', `s3rver:bucket/archives-${codec}/daily`, down]);
    ok({ ...copied, stdout: Buffer.alloc(0) }, 'rclone copy');
    for (const k of keys) await checkWithTool(path.join(down, k));
    const unpacked = await unpackFolderCopy(path.join(down, r.written[1]), codec === 'zip' ? undefined : await tarListing(folder, 'site'));
    expect(await contentOf(path.join(unpacked, 'site'))).toEqual(await contentOf(folder));
  });
});

describe('archive to S3 when the source fails', () => {
  it('completes no upload when the folder disappears mid-run, even past one multipart part', async () => {
    const folder = path.join(await tempDir('cairn-archive-src-'), 'vanishing');
    await makeTargetTree(folder);
    await fs.writeFile(path.join(folder, 'big.bin'), seededBytes(10, 12 * 1024 * 1024));
    await fs.writeFile(path.join(folder, 'zz-last.txt'), 'last\n');
    const err = await runArchive({ kind: 'archive', dest: `s3:${s3.endpoint}/bucket/vanishing`, codec: 'zstd' }, [{ path: folder }], {
      onProgress: (p) => {
        if (p.current?.endsWith('zz-last.txt')) rmSync(folder, { recursive: true, force: true });
      },
    }).catch((e: unknown) => e);
    expect((err as CairnError).code).toBe('NOT_FOUND');
    expect((err as CairnError).message).toContain('disappeared during the run');
    expect([...(await bucket('vanishing')).keys()]).toEqual([]);
  });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
