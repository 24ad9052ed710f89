/**
 * What the remote backends (S3, REST) share: saving without overwriting on servers that have no
 * conditional writes, reading byte ranges from HTTP answers that may or may not honour them, and
 * telling network failures apart.
 */
import { CairnError, isNotFound } from '../errors.js';
import type { Handle } from './backend.js';
import { checkAborted, checkRange, label, replacesLeftover, tooShort } from './files.js';

/**
 * The remote could not be reached at all: connection refused, unknown host, a TLS failure.
 * Usually a wrong location rather than a passing fault, so `RetryBackend` tries only briefly
 * until the remote has answered once.
 */
export class UnreachableError extends CairnError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('BACKEND_UNAVAILABLE', message, options);
    this.name = 'UnreachableError';
  }
}

const UNREACHABLE: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'unknown host',
  EAI_FAIL: 'unknown host',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  EPROTO: 'TLS handshake failed (is it http rather than https?)',
  ERR_SSL_WRONG_VERSION_NUMBER: 'TLS handshake failed (is it http rather than https?)',
  CERT_HAS_EXPIRED: 'the server certificate has expired',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'the server certificate is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'the server certificate is not trusted',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'the server certificate is not trusted',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'the server certificate is not trusted',
  ERR_TLS_CERT_ALTNAME_INVALID: 'the server certificate is for another host name',
};

/** The first system error code (ECONNRESET, ENOTFOUND, UND_ERR_SOCKET…) on `err` or its causes. */
export function systemCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0) e = errors[0];
    else e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function isAbort(err: unknown): boolean {
  return (err as { name?: unknown } | undefined)?.name === 'AbortError';
}

/**
 * A failure below HTTP (no answer at all) as a CairnError: `INTERRUPTED` for an abort,
 * `UnreachableError` when the remote cannot be reached, transient `BACKEND_UNAVAILABLE` for the
 * rest (resets, timeouts). `where` is a location without credentials.
 */
export function networkFailure(err: unknown, doing: string, where: string): CairnError {
  if (err instanceof CairnError) return err;
  if (isAbort(err)) return new CairnError('INTERRUPTED', `${doing} was interrupted`);
  const code = systemCode(err);
  if (code !== undefined && Object.hasOwn(UNREACHABLE, code)) return new UnreachableError(`cannot reach ${where} while ${doing}: ${UNREACHABLE[code]}`, { cause: err });
  return new CairnError('BACKEND_UNAVAILABLE', `${doing} at ${where} failed: ${code ?? (err as Error | undefined)?.message ?? String(err)}`, { cause: err });
}

/** What a remote backend must offer for `saveOnce`. */
interface Readable {
  stat(h: Handle): Promise<{ size: number }>;
  load(h: Handle, offset?: number, length?: number, signal?: AbortSignal): Promise<Buffer>;
  remove(h: Handle): Promise<void>;
}

/**
 * Saves through `put` unless the file is already there, for servers without conditional writes:
 * identical content (a retried save whose reply was lost) succeeds without writing again, other
 * content fails with `BAD_INPUT`, unless `data` is what the name says and so the file there is
 * not (see replacesLeftover). Two clients saving one name at once are not told apart; every name but
 * `config` is the hash of its content, so both write the same bytes. `data` may be given as its
 * size and a way to read it (a file to upload), read only when a file is there.
 */
export async function saveOnce(b: Readable, h: Handle, data: Uint8Array | { size: number; read: () => Promise<Uint8Array> }, where: string, signal: AbortSignal | undefined, put: () => Promise<void>): Promise<void> {
  checkAborted(signal, `saving ${label(h)}`);
  let size: number | undefined;
  try {
    size = (await b.stat(h)).size;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  if (size === undefined) return put();
  const ours = data instanceof Uint8Array ? data : await data.read();
  if (size === ours.length && (await b.load(h, 0, undefined, signal)).equals(ours)) return;
  if (!replacesLeftover(h, ours, size)) throw new CairnError('BAD_INPUT', `${label(h)} already exists in ${where} with other content; it is not overwritten`);
  // Removed first: a REST server may refuse to write over a file.
  try {
    await b.remove(h);
  } catch (err) {
    if (isNotFound(err)) return put();
    if (!(err instanceof CairnError) || err.code !== 'BAD_INPUT') throw err;
    throw new CairnError('BAD_INPUT', `${label(h)} in ${where} is not what its name says (left by a save that failed half way, or damaged) and cannot be replaced: ${(err as Error).message}`, { cause: err });
  }
  return put();
}


/** An answer to a GET that may have carried a Range header. */
export interface RangedAnswer {
  /** 206: the body starts where `contentRange` says; otherwise it is the whole file. */
  partial: boolean;
  /** "bytes START-END/TOTAL", as sent with a 206. */
  contentRange?: string;
  body: Buffer;
}

/** One `Backend.load` call, for `loadRange`. */
export interface LoadRequest {
  h: Handle;
  /** The location, for messages. */
  where: string;
  offset: number;
  length: number | undefined;
  signal: AbortSignal | undefined;
}

/**
 * Loads `length` bytes from `offset` (to the end when undefined) through `get`, which performs
 * one GET with the Range header it is given (none for a whole file) and answers
 * 'unsatisfiable' for a 416; `size` stats the file. Holds the `Backend.load` contract:
 * `INTEGRITY` for a range past the end, never a short buffer. Servers that ignore ranges, answer
 * a range past the end with an empty 206 or read `bytes=0-0` as the whole file are all handled.
 */
export async function loadRange(
  { h, where, offset, length, signal }: LoadRequest,
  get: (range: string | undefined) => Promise<RangedAnswer | 'unsatisfiable'>,
  size: () => Promise<number>,
): Promise<Buffer> {
  checkRange(h, offset, length);
  checkAborted(signal, `loading ${label(h)}`);
  if (length === 0) {
    const total = await size();
    if (offset > total) throw tooShort(h, where, total, offset, length);
    return Buffer.alloc(0);
  }
  const answer = await get(offset === 0 && length === undefined ? undefined : `bytes=${offset}-${length === undefined ? '' : offset + length - 1}`);
  if (answer === 'unsatisfiable') {
    const total = await size();
    if (length === undefined && offset === total) return Buffer.alloc(0);
    if (length === undefined ? offset > total : offset + length > total) throw tooShort(h, where, total, offset, length);
    throw new CairnError('BACKEND_UNAVAILABLE', `reading ${label(h)} in ${where}: the server refused the range ${offset}+${length ?? 'rest'} of a ${total}-byte file`);
  }
  let body: Buffer;
  let total: number | undefined;
  if (answer.partial) {
    const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(answer.contentRange ?? '');
    if (!m || Number(m[1]) !== offset) {
      throw new CairnError('BACKEND_UNAVAILABLE', `reading ${label(h)} in ${where}: the server answered another range (${answer.contentRange ?? 'none'}) than asked (from ${offset})`);
    }
    body = answer.body;
    total = m[2] === '*' ? undefined : Number(m[2]);
  } else {
    total = answer.body.length;
    body = answer.body.subarray(Math.min(offset, total));
  }
  if (total !== undefined && (length === undefined ? offset > total : offset + length > total)) throw tooShort(h, where, total, offset, length);
  const want = length ?? (total === undefined ? body.length : total - offset);
  if (body.length < want) throw new CairnError('BACKEND_UNAVAILABLE', `reading ${label(h)} in ${where}: the answer was cut short (${body.length} of ${want} bytes)`);
  return body.subarray(0, want);
}

/** An answer to a ranged GET, for `loadIntoRange`. */
export interface BodyAnswer {
  status: number | undefined;
  contentRange: string | null | undefined;
  body: AsyncIterable<Uint8Array> | null | undefined;
  /** Lets go of a body that will not be read. */
  discard(): void;
}

/**
 * `Backend.loadInto` over HTTP: `get` sends one GET with the Range header it is given (null for a
 * 416). An answer that is exactly the range asked for (206 with that Content-Range) is streamed
 * into `into`, which it must fill; any other answer goes through `load`, which handles every kind
 * of server.
 */
export async function loadIntoRange(
  b: { readonly location: string; load(h: Handle, offset?: number, length?: number, signal?: AbortSignal): Promise<Buffer> },
  { h, offset, into, signal }: { h: Handle; offset: number; into: Buffer; signal?: AbortSignal },
  get: (range: string) => Promise<BodyAnswer | null>,
): Promise<void> {
  if (into.length > 0) {
    checkRange(h, offset, into.length);
    const last = offset + into.length - 1;
    const answer = await get(`bytes=${offset}-${last}`);
    const m = answer?.status === 206 ? /^bytes (\d+)-(\d+)\/(?:\d+|\*)$/.exec(answer.contentRange ?? '') : null;
    if (answer?.body && m && Number(m[1]) === offset && Number(m[2]) === last) return readBodyInto(answer.body, into, `loading ${label(h)}`, b.location);
    answer?.discard();
  }
  (await b.load(h, offset, into.length, signal)).copy(into);
}

/** Streams an answer's body into `into`, which it must fill exactly; a longer or shorter body fails. */
async function readBodyInto(body: AsyncIterable<Uint8Array>, into: Buffer, doing: string, where: string): Promise<void> {
  let at = 0;
  try {
    for await (const chunk of body) {
      if (at + chunk.length > into.length) throw new CairnError('BACKEND_UNAVAILABLE', `${doing} at ${where}: the answer is longer than the range asked for`);
      into.set(chunk, at);
      at += chunk.length;
    }
  } catch (err) {
    throw networkFailure(err, doing, where);
  }
  if (at < into.length) throw new CairnError('BACKEND_UNAVAILABLE', `${doing} at ${where}: the answer was cut short (${at} of ${into.length} bytes)`);
}
