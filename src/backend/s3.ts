import type { BucketLocationConstraint, PutObjectCommandInput, S3Client, S3ClientConfig, ServerSideEncryption, StorageClass } from '@aws-sdk/client-s3';
import { createReadStream } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { CairnError } from '../errors.js';
import type { Backend, FileInfo, FileType, Handle } from './backend.js';
import { checkAborted, FOLDERS, handleKey, ID, label } from './files.js';
import { loadIntoRange, loadRange, networkFailure, saveOnce, type RangedAnswer } from './remote.js';

/** Options restic users pass as `-o s3.NAME=VALUE`. */
export interface S3Options {
  /** `path` (bucket in the path), `dns` (bucket in the host name) or `auto`: dns on AWS, path elsewhere. */
  bucketLookup?: string;
  /** Storage class of data (pack) files; the small files read often stay STANDARD. */
  storageClass?: string;
  /** Server-side encryption: `AES256` or `aws:kms`. */
  sse?: string;
  /** KMS key for `sse=aws:kms`. */
  sseKmsKeyId?: string;
  /** Region; else AWS_REGION, AWS_DEFAULT_REGION, the region in an AWS host name, or us-east-1. */
  region?: string;
  /** Credentials for callers that hold them (the service's plans); else the SDK's chain: environment, profile files, roles. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** The `-o s3.…` names and the field each sets. */
export const S3_OPTIONS: Readonly<Record<string, Exclude<keyof S3Options, 'credentials'>>> = Object.freeze({
  'bucket-lookup': 'bucketLookup',
  'storage-class': 'storageClass',
  sse: 'sse',
  'sse-kms-key-id': 'sseKmsKeyId',
  region: 'region',
});

export interface S3Location {
  /** The endpoint URL; undefined for AWS, where the SDK derives it from the region. */
  endpoint?: string;
  aws: boolean;
  /** Region named by an AWS host name such as s3.eu-west-1.amazonaws.com. */
  hostRegion?: string;
  bucket: string;
  /** Key prefix, empty or ending in '/'. */
  prefix: string;
  /** The location as messages show it: `s3:` and the endpoint, bucket and prefix. */
  display: string;
}

const USAGE = 'write it as s3:https://host[:port]/bucket[/prefix], s3:http://host:port/bucket[/prefix] or s3:host/bucket[/prefix] (https)';

/**
 * Parses what follows `s3:` in a restic location: `http://host:port/bucket/prefix`,
 * `https://…`, or `host/bucket/prefix` (https). Credentials in the location are refused, since
 * they belong in the environment; messages never repeat them.
 */
export function parseS3Location(spec: string): S3Location {
  const withScheme = /^https?:\/\//i.test(spec) ? spec : `https://${spec}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CairnError('BAD_INPUT', `invalid S3 location: ${USAGE}`);
  }
  if (url.username || url.password) {
    throw new CairnError('BAD_INPUT', 'S3 credentials do not belong in the repository location: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead');
  }
  if (url.search || url.hash) throw new CairnError('BAD_INPUT', `invalid S3 location (no ? or # allowed): ${USAGE}`);
  const parts = decodeURIComponent(url.pathname).split('/').filter((p) => p !== '');
  const bucket = parts.shift();
  if (!bucket) throw new CairnError('BAD_INPUT', `the S3 location names no bucket: ${USAGE}`);
  const prefix = parts.length > 0 ? `${parts.join('/')}/` : '';
  const aws = /(^|\.)amazonaws\.com(\.cn)?$/i.test(url.hostname);
  const hostRegion = /^s3[.-]([a-z]{2}(?:-gov)?-[a-z]+-\d)\.amazonaws\.com/i.exec(url.hostname)?.[1];
  const shown = /^https?:\/\//i.test(spec) ? `${url.protocol}//${url.host}` : url.host;
  return {
    endpoint: aws ? undefined : `${url.protocol}//${url.host}`,
    aws,
    hostRegion,
    bucket,
    prefix,
    display: `s3:${shown}/${bucket}${prefix ? `/${prefix.slice(0, -1)}` : ''}`,
  };
}

/** Files above this size go up in parts of this size, several at once (lib-storage). */
const PART_SIZE = 16 * 1024 * 1024;
const PARTS_IN_FLIGHT = 4;
const PAGE = 1000;
/** A store out of room: MinIO's full disks (507), Ceph's and others' quotas (403 QuotaExceeded). */
const OUT_OF_ROOM = new Set(['XMinioStorageFull', 'QuotaExceeded', 'InsufficientStorage', 'StorageFull']);
const CREDENTIAL_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired', 'AuthorizationHeaderMalformed']);
const TRANSIENT_ERRORS = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestTimeTooSkewed', 'InternalError', 'ServiceUnavailable']);

type Sdk = typeof import('@aws-sdk/client-s3');

interface SdkError {
  name?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

/**
 * A repository under a key prefix in an S3 bucket, laid out as restic lays it out (`config`,
 * `keys/<id>`, `data/<xx>/<id>`, …), so restic and `rclone copy` see the same repository.
 * Credentials come from the AWS SDK's usual chain (environment, profile files, AWS_PROFILE,
 * instance roles). Listings go without a delimiter, page by page. Servers without conditional
 * writes are assumed (see `saveOnce`), and a failed multipart upload is aborted only as a courtesy.
 * The SDK's own retries are off: `RetryBackend` retries, knowing transient from permanent.
 */
export class S3Backend implements Backend {
  readonly location: string;
  readonly #loc: S3Location;
  readonly #opts: S3Options;
  readonly #config: S3ClientConfig;
  #sdk?: Promise<{ sdk: Sdk; client: S3Client }>;

  constructor(loc: S3Location, opts: S3Options = {}) {
    this.#loc = loc;
    this.#opts = Object.freeze({ ...opts });
    this.location = loc.display;
    const lookup = opts.bucketLookup ?? 'auto';
    if (!['auto', 'dns', 'path'].includes(lookup)) throw new CairnError('BAD_INPUT', `invalid s3.bucket-lookup ${JSON.stringify(lookup)}: use auto, dns or path`);
    if (opts.sse !== undefined && !['AES256', 'aws:kms'].includes(opts.sse)) throw new CairnError('BAD_INPUT', `invalid s3.sse ${JSON.stringify(opts.sse)}: use AES256 or aws:kms`);
    if (opts.sseKmsKeyId !== undefined && opts.sse !== 'aws:kms') throw new CairnError('BAD_INPUT', 's3.sse-kms-key-id needs s3.sse=aws:kms');
    this.#config = {
      region: opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? loc.hostRegion ?? 'us-east-1',
      ...(loc.endpoint ? { endpoint: loc.endpoint } : {}),
      ...(opts.credentials ? { credentials: opts.credentials } : {}),
      forcePathStyle: lookup === 'path' || (lookup === 'auto' && !loc.aws),
      followRegionRedirects: true,
      maxAttempts: 1,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 15_000, requestTimeout: 300_000 },
    } satisfies S3ClientConfig;
  }

  /** The SDK and a client, loaded on first use: the SDK takes a fifth of a second to load, which commands on local repositories should not pay. */
  #connect(): Promise<{ sdk: Sdk; client: S3Client }> {
    this.#sdk ??= import('@aws-sdk/client-s3').then((sdk) => ({ sdk, client: new sdk.S3Client(this.#config) }));
    return this.#sdk;
  }

  async create(): Promise<void> {
    if (await this.exists()) throw new CairnError('REPO_EXISTS', `a repository already exists at ${this.location}`);
    const { sdk, client } = await this.#connect();
    try {
      await client.send(new sdk.HeadBucketCommand({ Bucket: this.#loc.bucket }));
      return;
    } catch (err) {
      const e = err as SdkError;
      if (e.$metadata?.httpStatusCode !== 404) throw this.#failure(err, 'creating the repository');
    }
    const region = await client.config.region();
    try {
      await client.send(
        new sdk.CreateBucketCommand({
          Bucket: this.#loc.bucket,
          ...(this.#loc.aws && region !== 'us-east-1' ? { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } } : {}),
        }),
      );
    } catch (err) {
      if ((err as SdkError).name !== 'BucketAlreadyOwnedByYou') throw this.#failure(err, `creating the bucket "${this.#loc.bucket}"`);
    }
  }

  save(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    return saveOnce(this, h, data, this.location, signal, () => this.#put(h, Buffer.from(data.buffer, data.byteOffset, data.byteLength), data.byteLength, signal));
  }

  /** One PutObject over the old object: S3 shows the old object or the new one, never neither. */
  replace(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    return this.#put(h, Buffer.from(data.buffer, data.byteOffset, data.byteLength), data.byteLength, signal);
  }

  /**
   * Uploads a local file as it is read (a staged pack), so a backup holds no pack in memory to
   * send it; removes the file once it is stored. Looks before it writes, as `save` does. Each
   * attempt opens the file afresh (the SDK does not retry; `RetryBackend` calls this again).
   */
  async saveFile(h: Handle, path: string, signal?: AbortSignal): Promise<void> {
    const { size } = await stat(path);
    await saveOnce(this, h, { size, read: () => readFile(path) }, this.location, signal, async () => {
      const file = createReadStream(path);
      try {
        await this.#put(h, file, size, signal);
      } finally {
        file.destroy();
      }
    });
    await rm(path, { force: true });
  }

  /** One PutObject of `length` bytes, or a multipart upload past PART_SIZE. */
  async #put(h: Handle, body: Buffer | Readable, length: number, signal: AbortSignal | undefined): Promise<void> {
    const params: PutObjectCommandInput = {
      Bucket: this.#loc.bucket,
      Key: this.#key(h),
      Body: body,
      ContentLength: length,
      ContentType: 'application/octet-stream',
      ...(h.type === 'data' && this.#opts.storageClass ? { StorageClass: this.#opts.storageClass as StorageClass } : {}),
      ...(this.#opts.sse ? { ServerSideEncryption: this.#opts.sse as ServerSideEncryption } : {}),
      ...(this.#opts.sseKmsKeyId ? { SSEKMSKeyId: this.#opts.sseKmsKeyId } : {}),
    };
    const { sdk, client } = await this.#connect();
    if (length > PART_SIZE) return this.#multipart(sdk, client, params, h, signal);
    try {
      await client.send(new sdk.PutObjectCommand(params), { abortSignal: signal });
    } catch (err) {
      throw this.#failure(err, `saving ${label(h)}`, h);
    }
  }

  async #multipart(sdk: Sdk, client: S3Client, params: PutObjectCommandInput, h: Handle, signal: AbortSignal | undefined): Promise<void> {
    const { Upload } = await import('@aws-sdk/lib-storage');
    const controller = new AbortController();
    const onAbort = () => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    // Some servers (s3rver) cannot abort a multipart upload; lib-storage would then report that failure instead of the real one.
    const upload = new Upload({ client, params, partSize: PART_SIZE, queueSize: PARTS_IN_FLIGHT, leavePartsOnError: true, abortController: controller });
    try {
      await upload.done();
    } catch (err) {
      if (upload.uploadId) {
        await client.send(new sdk.AbortMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: upload.uploadId })).catch(() => undefined);
      }
      if (signal?.aborted) throw new CairnError('INTERRUPTED', `saving ${label(h)} was interrupted`);
      throw this.#failure(err, `saving ${label(h)}`, h);
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  load(h: Handle, offset = 0, length?: number, signal?: AbortSignal): Promise<Buffer> {
    const key = this.#key(h);
    const doing = `loading ${label(h)}`;
    return loadRange(
      { h, where: this.location, offset, length, signal },
      async (range): Promise<RangedAnswer | 'unsatisfiable'> => {
        const { sdk, client } = await this.#connect();
        try {
          const r = await client.send(new sdk.GetObjectCommand({ Bucket: this.#loc.bucket, Key: key, Range: range }), { abortSignal: signal });
          const bytes = r.Body ? await r.Body.transformToByteArray() : new Uint8Array(0);
          const body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          return { partial: r.$metadata.httpStatusCode === 206, contentRange: r.ContentRange, body };
        } catch (err) {
          if ((err as SdkError).$metadata?.httpStatusCode === 416) return 'unsatisfiable';
          throw this.#failure(err, doing, h);
        }
      },
      async () => (await this.stat(h)).size,
    );
  }

  /**
   * As `load` of `into.length` bytes, streamed into the caller's buffer (restore and check reuse a
   * few buffers instead of one per range); an answer other than the exact range goes through `load`.
   */
  loadInto(h: Handle, offset: number, into: Buffer, signal?: AbortSignal): Promise<void> {
    return loadIntoRange(this, { h, offset, into, signal }, async (range) => {
      const { sdk, client } = await this.#connect();
      try {
        const r = await client.send(new sdk.GetObjectCommand({ Bucket: this.#loc.bucket, Key: this.#key(h), Range: range }), { abortSignal: signal });
        const body = r.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined;
        return { status: r.$metadata.httpStatusCode, contentRange: r.ContentRange, body, discard: () => body?.destroy?.() };
      } catch (err) {
        if ((err as SdkError).$metadata?.httpStatusCode === 416) return null;
        throw this.#failure(err, `loading ${label(h)}`, h);
      }
    });
  }

  async stat(h: Handle): Promise<FileInfo> {
    const key = this.#key(h);
    const { sdk, client } = await this.#connect();
    try {
      const r = await client.send(new sdk.HeadObjectCommand({ Bucket: this.#loc.bucket, Key: key }));
      return { name: h.name, size: r.ContentLength ?? 0 };
    } catch (err) {
      throw this.#failure(err, `reading ${label(h)}`, h);
    }
  }

  async *list(type: FileType, signal?: AbortSignal): AsyncIterable<FileInfo> {
    const doing = `listing ${type} files`;
    checkAborted(signal, doing);
    if (type === 'config') {
      const h: Handle = { type, name: '' };
      try {
        yield await this.stat(h);
      } catch (err) {
        if (!(err instanceof CairnError && (err.code === 'NOT_FOUND' || err.code === 'REPO_NOT_FOUND'))) throw err;
      }
      return;
    }
    const base = `${this.#loc.prefix}${FOLDERS[type]}/`;
    const { sdk, client } = await this.#connect();
    // No delimiter: s3rver leaves nested prefixes (data/xx/) out of delimited listings.
    let token: string | undefined;
    do {
      checkAborted(signal, doing);
      let page;
      try {
        page = await client.send(new sdk.ListObjectsV2Command({ Bucket: this.#loc.bucket, Prefix: base, ContinuationToken: token, MaxKeys: PAGE }), { abortSignal: signal });
      } catch (err) {
        // A missing bucket holds no files, as a missing folder holds none for the local backend.
        if ((err as SdkError).name === 'NoSuchBucket') return;
        throw this.#failure(err, doing);
      }
      for (const o of page.Contents ?? []) {
        const name = listedName(type, (o.Key ?? '').slice(base.length));
        if (name !== undefined) yield { name, size: o.Size ?? 0 };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async remove(h: Handle): Promise<void> {
    const key = this.#key(h);
    const { sdk, client } = await this.#connect();
    try {
      await client.send(new sdk.DeleteObjectCommand({ Bucket: this.#loc.bucket, Key: key }));
    } catch (err) {
      const e = this.#failure(err, `removing ${label(h)}`, h);
      if (e.code !== 'NOT_FOUND') throw e;
    }
  }

  async exists(): Promise<boolean> {
    try {
      // An empty config is what an init that failed may leave: no repository.
      return (await this.stat({ type: 'config', name: '' })).size > 0;
    } catch (err) {
      if (err instanceof CairnError && (err.code === 'NOT_FOUND' || err.code === 'REPO_NOT_FOUND')) return false;
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.#sdk) (await this.#sdk).client.destroy();
  }

  #key(h: Handle): string {
    return this.#loc.prefix + handleKey(h);
  }

  /**
   * An SDK failure as a CairnError whose code `RetryBackend` understands: missing objects are
   * `NOT_FOUND`, a missing bucket `REPO_NOT_FOUND`, refused credentials and other refusals
   * `BAD_INPUT` (permanent), throttling, 5xx and network trouble transient. Messages name the
   * location and the server's error code, never a credential.
   */
  #failure(err: unknown, doing: string, h?: Handle): CairnError {
    if (err instanceof CairnError) return err;
    const e = err as SdkError;
    const status = e.$metadata?.httpStatusCode;
    const name = e.name ?? '';
    const where = this.location;
    if (name === 'CredentialsProviderError' || /could not load credentials/i.test(e.message ?? '')) {
      return new CairnError('BAD_INPUT', `no S3 credentials found for ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a profile in ~/.aws/credentials`, { cause: err });
    }
    if (status === undefined) return networkFailure(err, doing, where);
    // HEAD answers carry no body, so no error code: the SDK calls those "Unknown" or by the status.
    const what = /^[A-Za-z]+$/.test(name) && name !== 'Unknown' ? `${status} ${name}` : `${status}`;
    if (name === 'NoSuchBucket') {
      return new CairnError('REPO_NOT_FOUND', `the bucket "${this.#loc.bucket}" does not exist at ${where} (cairn init creates it)`, { cause: err });
    }
    if (status === 404 || name === 'NoSuchKey' || name === 'NotFound') {
      return new CairnError('NOT_FOUND', `${h ? label(h) : 'the object'} in ${where} does not exist`, { cause: err });
    }
    if (status === 507 || OUT_OF_ROOM.has(name)) {
      return new CairnError('NO_SPACE', `${where} has no room left while ${doing}: the server answered ${what}; free space there (or raise the bucket's quota) and run the command again`, { cause: err });
    }
    if (status === 401 || status === 403 || CREDENTIAL_ERRORS.has(name)) {
      return new CairnError(
        'BAD_INPUT',
        `${where} refused access while ${doing} (${what}): check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), the region and the bucket's permissions`,
        { cause: err },
      );
    }
    if (status === 301 || name === 'PermanentRedirect') {
      return new CairnError('BAD_INPUT', `the bucket "${this.#loc.bucket}" is in another region than the one used; set AWS_DEFAULT_REGION or -o s3.region`, { cause: err });
    }
    if (status === 429 || status >= 500 || TRANSIENT_ERRORS.has(name)) {
      return new CairnError('BACKEND_UNAVAILABLE', `${doing} at ${where} failed: the server answered ${what}`, { cause: err });
    }
    return new CairnError('BAD_INPUT', `${doing} at ${where} failed: the server answered ${what}${e.message && e.message !== name ? `: ${e.message}` : ''}`, { cause: err });
  }
}

/** The id in a listed key below a type's folder, or undefined for keys that are not repository files. */
function listedName(type: FileType, rel: string): string | undefined {
  if (type === 'data') {
    const slash = rel.indexOf('/');
    const name = rel.slice(slash + 1);
    return slash === 2 && name.startsWith(rel.slice(0, 2)) && ID.test(name) ? name : undefined;
  }
  return ID.test(rel) ? rel : undefined;
}
