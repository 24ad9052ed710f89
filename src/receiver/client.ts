/**
 * A client for the receiver: uploads one archive file as multipart/form-data, streamed from disk
 * with a Content-Length, so memory stays flat and the receiver can refuse an oversize file before
 * reading it.
 *
 * ```ts
 * const stored = await uploadArchive('http://127.0.0.1:8090', 'shop', '/tmp/mysql-2026-01-02-03-04-05-shop-<uuid>.sql.zip');
 * console.log(stored.id, stored.sha256);
 * ```
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { CairnError, type ErrorCode } from '../errors.js';

export interface PostArchiveOptions {
  /** The file name sent in the part header; default the file's own name. */
  fileName?: string;
  /** The form field; default `file`. */
  field?: string;
  /** Bearer token, when the receiver requires one. */
  token?: string;
  /** Send the body chunked, without a Content-Length. */
  chunked?: boolean;
  /**
   * The agent for the connection; default Node's global agent. Keep connections alive: a server
   * that answers before it has read the whole body (a refusal) then reads and drops the rest, where
   * with `Connection: close` it may close at once and the reset can overtake its answer (EPIPE).
   */
  agent?: http.Agent;
  signal?: AbortSignal;
}

export interface ReceiverResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The parsed JSON body, or the text when it is not JSON. */
  body: unknown;
}

/** What the receiver answers to a stored upload (`data` of `POST /:db_name`). */
export interface UploadedArchive {
  id: number;
  database_name: string;
  file_name: string;
  timestamp: string;
  sha256: string;
  size: number;
}

/** A refusal by the receiver: its HTTP status and the `error.code` and `error.message` it sent. */
export class ReceiverRequestError extends CairnError {
  readonly status: number;
  readonly receiverCode: string;

  constructor(status: number, receiverCode: string, message: string) {
    const known: Record<number, ErrorCode> = { 400: 'BAD_INPUT', 401: 'UNAUTHORIZED', 404: 'NOT_FOUND', 409: 'CONFLICT', 413: 'TOO_LARGE' };
    super(known[status] ?? (status >= 500 ? 'BACKEND_UNAVAILABLE' : 'BAD_INPUT'), `receiver answered ${status}: ${message}`);
    this.status = status;
    this.receiverCode = receiverCode;
  }
}

function quote(s: string): string {
  return s.replace(/["\\\r\n]/g, (c) => encodeURIComponent(c));
}

/**
 * POSTs `file` as multipart/form-data to `url` (the full URL, e.g. `http://host:8090/shop`) and
 * returns the status and body whatever the status. An answer that comes before the whole body is
 * sent (a refusal) stops the sending and is returned.
 */
export function postArchive(url: string, file: string, opts: PostArchiveOptions = {}): Promise<ReceiverResponse> {
  const boundary = `----cairn${randomBytes(12).toString('hex')}`;
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="${quote(opts.field ?? 'file')}"; filename="${quote(opts.fileName ?? path.basename(file))}"\r\n` +
      'Content-Type: application/zip\r\n\r\n',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const size = fs.statSync(file).size;
  const headers: http.OutgoingHttpHeaders = { 'content-type': `multipart/form-data; boundary=${boundary}`, accept: 'application/json' };
  if (opts.chunked) headers['transfer-encoding'] = 'chunked';
  else headers['content-length'] = head.length + size + tail.length;
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const target = new URL(url);
  const transport = target.protocol === 'https:' ? https : http;
  // The path goes out as written: URL would resolve "%2e%2e" segments, and a test of the receiver must be able to send them.
  const rawPath = /^[a-z]+:\/\/[^/?#]*([^#]*)/i.exec(url)?.[1] || '/';

  return new Promise((resolve, reject) => {
    let answered = false;
    const input = fs.createReadStream(file);
    const req = transport.request({ protocol: target.protocol, hostname: target.hostname, port: target.port, path: rawPath, method: 'POST', headers, signal: opts.signal, agent: opts.agent });
    req.on('response', (res) => {
      answered = true;
      input.destroy();
      const chunks: Buffer[] = [];
      let kept = 0;
      res.on('data', (c: Buffer) => {
        // An answer is a short JSON document; a huge one (a misconfigured proxy) is cut at 1 MiB.
        if (kept < 1 << 20) chunks.push(c);
        kept += c.length;
      });
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: the text is returned as it is.
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        if (!req.writableFinished) req.destroy();
      });
    });
    // Once an answer is in, a failed write of the rest of the body no longer matters.
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    input.on('error', (err) => {
      req.destroy(err);
      reject(err);
    });
    req.write(head);
    input.pipe(req, { end: false });
    input.on('end', () => req.end(tail));
  });
}

/** Uploads an archive of `database` to the receiver at `baseUrl`; throws ReceiverRequestError on a refusal. */
export async function uploadArchive(baseUrl: string, database: string, file: string, opts: Omit<PostArchiveOptions, 'field'> = {}): Promise<UploadedArchive> {
  const res = await postArchive(`${baseUrl.replace(/\/+$/, '')}/${encodeURIComponent(database)}`, file, opts);
  const body = res.body as { data?: UploadedArchive; error?: { code?: string; message?: string } };
  if (res.status === 200 && body?.data) return body.data;
  throw new ReceiverRequestError(res.status, body?.error?.code ?? 'UNKNOWN', body?.error?.message ?? String(res.body).slice(0, 200));
}
