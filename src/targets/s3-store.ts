import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ListObjectsV2CommandOutput,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable, Transform } from 'node:stream';
import { CairnError } from '../errors.js';
import { filterSdkNodeWarning } from '../util/sdk-warning.js';
import { checkKey, type ObjectStore, type StoredObject } from './store.js';

/** Parts of a multipart upload: memory per upload is at most QUEUE × PART. */
const PART = 8 * 1024 * 1024;
const QUEUE = 2;

/**
 * An S3 prefix seen as an object store. Credentials come from the AWS SDK's default chain (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, profiles, instance roles); the region from AWS_REGION, else us-east-1. Path-style
 * addressing and checksums only where required keep it working with MinIO, s3rver and other S3-compatible
 * servers. Large bodies go up as multipart uploads that are completed only when the whole stream has been read.
 */
export class S3Store implements ObjectStore {
  readonly location: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #endpoint: string;

  constructor(endpoint: string, bucket: string, prefix: string, location: string) {
    filterSdkNodeWarning();
    this.location = location;
    this.#endpoint = endpoint;
    this.#bucket = bucket;
    this.#prefix = prefix === '' ? '' : `${prefix}/`;
    this.#client = new S3Client({
      endpoint,
      region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      forcePathStyle: true,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 5000, requestTimeout: 60_000 },
    });
  }

  #key(key: string): string {
    checkKey(key);
    return this.#prefix + key;
  }

  async put(key: string, body: Readable | Buffer, signal?: AbortSignal): Promise<number> {
    const Key = this.#key(key);
    if (Buffer.isBuffer(body)) {
      await this.#send(() => this.#client.send(new PutObjectCommand({ Bucket: this.#bucket, Key, Body: body }), { abortSignal: signal }), key);
      return body.length;
    }
    let bytes = 0;
    const counted = body.pipe(
      new Transform({
        transform(chunk: Buffer, _enc, cb) {
          bytes += chunk.length;
          cb(null, chunk);
        },
      }),
    );
    // The source's errors do not travel through pipe(): pass them on so the upload fails instead of waiting.
    body.once('error', (err) => counted.destroy(err));
    // s3rver cannot abort a multipart upload; an unfinished one is never completed, so nothing becomes visible.
    const upload = new Upload({ client: this.#client, params: { Bucket: this.#bucket, Key, Body: counted }, partSize: PART, queueSize: QUEUE, leavePartsOnError: true });
    const onAbort = () => void upload.abort().catch(() => undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.#send(() => upload.done(), key);
    } catch (err) {
      body.destroy();
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
    return bytes;
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const r = await this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }));
      return Buffer.from(await r.Body!.transformToByteArray());
    } catch (err) {
      if ((err as { name?: string }).name === 'NoSuchKey') return undefined;
      throw this.#failure(err, key);
    }
  }

  async list(prefix = ''): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      // No delimiter: s3rver (and some other servers) list nested keys wrongly with one.
      const page: ListObjectsV2CommandOutput = await this.#send(
        () => this.#client.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#prefix + prefix, ContinuationToken: token })),
        prefix,
      );
      for (const o of page.Contents ?? []) {
        if (o.Key === undefined || o.Key === this.#prefix) continue;
        out.push({ key: o.Key.slice(this.#prefix.length), size: o.Size ?? 0 });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out;
  }

  async delete(key: string): Promise<void> {
    await this.#send(() => this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) })), key);
  }

  async copy(from: string, to: string): Promise<void> {
    const source = `${this.#bucket}/${this.#key(from)}`.split('/').map(encodeURIComponent).join('/');
    try {
      await this.#client.send(new CopyObjectCommand({ Bucket: this.#bucket, Key: this.#key(to), CopySource: source }));
    } catch (err) {
      // A single CopyObject stops at 5 GiB; larger objects travel through this process instead.
      if ((err as { name?: string }).name !== 'EntityTooLarge' && (err as { name?: string }).name !== 'InvalidRequest') throw this.#failure(err, from);
      const got = await this.#send(() => this.#client.send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(from) })), from);
      await this.put(to, got.Body as Readable);
    }
  }

  async move(from: string, to: string): Promise<void> {
    await this.copy(from, to);
    await this.delete(from);
  }

  async putFolder(key: string): Promise<void> {
    await this.put(key.endsWith('/') ? key : `${key}/`, Buffer.alloc(0));
  }

  close(): void {
    this.#client.destroy();
  }

  async #send<T>(call: () => Promise<T>, key: string): Promise<T> {
    try {
      return await call();
    } catch (err) {
      throw this.#failure(err, key);
    }
  }

  #failure(err: unknown, key: string): Error {
    if (err instanceof CairnError) return err;
    const e = err as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
    const where = `S3 bucket ${JSON.stringify(this.#bucket)} at ${this.#endpoint}`;
    if (e.name === 'AbortError') return new CairnError('INTERRUPTED', 'interrupted', { cause: err });
    const code = e.code ?? e.name ?? '';
    if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'TimeoutError'].includes(code)) {
      return new CairnError('BACKEND_UNAVAILABLE', `cannot reach ${where} (${code}): check the URL and that the server is running`, { cause: err });
    }
    if (code === 'NoSuchKey' || code === 'NotFound') return new CairnError('NOT_FOUND', `${JSON.stringify(key)} is not in ${where}`, { cause: err });
    if (code === 'NoSuchBucket') return new CairnError('BACKEND_UNAVAILABLE', `${where} does not exist: create it first`, { cause: err });
    if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'CredentialsProviderError'].includes(code)) {
      return new CairnError('BACKEND_UNAVAILABLE', `${where} refused access (${code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`, { cause: err });
    }
    return new CairnError('BACKEND_UNAVAILABLE', `${where} failed on ${JSON.stringify(key)}: ${code || e.message}`, { cause: err });
  }
}
