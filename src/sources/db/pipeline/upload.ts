import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError } from '../../../errors.js';

export interface UploadOptions {
  /** Bearer token for the receiver. */
  token?: string;
  /** Attempts after the first, for 5xx answers and network errors; a 4xx is final. */
  retries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  signal?: AbortSignal;
  onRetry?: (attempt: number, reason: string) => void;
}

export interface UploadResult {
  status: number;
  /** The receiver's JSON answer, when it sent one. */
  body: unknown;
  attempts: number;
}

class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `POST {base}/{database}` as multipart/form-data with the file in field `file`, streamed from
 * disk with a known length (no buffering, no chunked encoding). Retries 5xx answers and network
 * errors with exponential backoff and full jitter; a 4xx answer fails at once with the receiver's message.
 */
export async function uploadArchive(base: string, database: string, file: string, opts: UploadOptions = {}): Promise<UploadResult> {
  const url = new URL(`${base.replace(/\/+$/, '')}/${encodeURIComponent(database)}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CairnError('BAD_INPUT', `--upload must be an http:// or https:// URL, not ${url.protocol}`);
  const retries = opts.retries ?? 4;
  for (let attempt = 1; ; attempt++) {
    if (opts.signal?.aborted) throw new CairnError('INTERRUPTED', 'upload interrupted');
    try {
      const r = await postOnce(url, file, opts);
      return { ...r, attempts: attempt };
    } catch (err) {
      const status = err instanceof HttpStatusError ? err.status : 0;
      if ((status >= 400 && status < 500) || attempt > retries || opts.signal?.aborted) {
        throw new CairnError('BACKEND_UNAVAILABLE', `upload to ${url.origin}${url.pathname} failed${attempt > 1 ? ` after ${attempt} attempts` : ''}: ${(err as Error).message}`);
      }
      opts.onRetry?.(attempt, (err as Error).message);
      const cap = Math.min(opts.maxDelayMs ?? 10_000, (opts.baseDelayMs ?? 500) * 2 ** (attempt - 1));
      await sleep(Math.random() * cap, undefined, { signal: opts.signal }).catch(() => undefined);
    }
  }
}

async function postOnce(url: URL, file: string, opts: UploadOptions): Promise<{ status: number; body: unknown }> {
  const size = (await fs.stat(file)).size;
  const boundary = `----cairn${randomBytes(12).toString('hex')}`;
  const filename = path.basename(file).replace(/["\r\n\\]/g, '_');
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/zip\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const headers: http.OutgoingHttpHeaders = {
    'content-type': `multipart/form-data; boundary=${boundary}`,
    'content-length': head.length + size + tail.length,
    accept: 'application/json',
  };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const input = createReadStream(file);
    // A fresh connection per attempt (agent: false): a receiver that answered early and left the
    // rest of the body unread must not leave a half-sent request on a pooled socket.
    const req = transport.request(url, { method: 'POST', headers, signal: opts.signal, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (text.length < 65536) text += d;
      });
      res.on('error', reject);
      res.on('end', () => {
        // The receiver may answer (an error) before it read the whole body: stop sending.
        if (!req.writableFinished) {
          input.destroy();
          req.destroy();
        }
        const status = res.statusCode ?? 0;
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // A receiver that answers with text: keep the text for the message.
        }
        if (status >= 200 && status < 300) return resolve({ status, body });
        const detail = (body as { error?: { message?: string }; message?: string })?.error?.message ?? (body as { message?: string })?.message ?? text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
        reject(new HttpStatusError(status, `HTTP ${status}${detail ? `: ${String(detail)}` : ''}`));
      });
    });
    req.on('error', reject);
    req.write(head);
    input.on('error', (err) => req.destroy(err));
    input.on('end', () => req.end(tail));
    input.pipe(req, { end: false });
  });
}
