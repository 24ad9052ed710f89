import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { CairnError } from '../../../errors.js';
import { postArchive } from '../../../receiver/client.js';

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
 * disk with a known length (no buffering, no chunked encoding; see `postArchive`). Retries 5xx answers and network
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
  // A fresh connection per attempt, so that a receiver that answered early and left the rest of the
  // body unread cannot leave a half-sent request on a pooled socket; kept alive, so that such a
  // receiver drains the rest instead of resetting the connection under its answer.
  const agent = new (url.protocol === 'https:' ? https : http).Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const { status, body } = await postArchive(url.href, file, { token: opts.token, signal: opts.signal, agent });
    if (status >= 200 && status < 300) return { status, body };
    const text = typeof body === 'string' ? body : '';
    const detail = (body as { error?: { message?: string }; message?: string })?.error?.message ?? (body as { message?: string })?.message ?? text.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
    throw new HttpStatusError(status, `HTTP ${status}${detail ? `: ${String(detail)}` : ''}`);
  } finally {
    agent.destroy();
  }
}
