/**
 * The receiver as a fastify app: the store, an optional bearer token, the routes, and one error
 * shape for every refusal: `{"error":{"code","message"},"message"}` with a 4xx/5xx status.
 *
 * ```ts
 * const receiver = await startReceiver({ storage: '/srv/dumps', port: 0 });
 * await fetch(`${receiver.url}/`); // {"data":[],"message":"success"}
 * await receiver.close();
 * ```
 */
import { sameSecret } from '../util/secret-file.js';
import type { AddressInfo } from 'node:net';
import { DEFAULT_MAX_SIZE } from './names.js';
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { CairnError, type ErrorCode } from '../errors.js';
import { receiverRoutes, SEND_MULTIPART } from './routes.js';
import { ReceiverStore } from './store.js';
import { sweepTempFiles } from './upload.js';

/** 2 GiB: the default largest archive. */
export { DEFAULT_MAX_SIZE };

export interface ReceiverOptions {
  /** Folder the archives are stored in (created if missing). */
  storage: string;
  /** Catalog URL: `sqlite:PATH`, `mysql://…`, `postgres://…`; default SQLite `storage/receiver.db`. */
  catalog?: string;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Largest archive accepted, in bytes; default 2 GiB. */
  maxSize?: number;
  /** Archives kept per database (the newest); all when undefined. */
  keep?: number;
  /** A pino logger for requests and events; silent when absent. */
  logger?: FastifyBaseLogger;
}

export interface Receiver {
  app: FastifyInstance;
  store: ReceiverStore;
}

export interface RunningReceiver extends Receiver {
  /** `http://host:port`, without a trailing slash. */
  url: string;
  port: number;
  /** Stops accepting requests, lets those in flight finish, closes the catalog. */
  close(): Promise<void>;
}

/** How long the rest of a refused body is read and dropped before the connection is closed. */
const LINGER_MS = 5000;

const STATUS: Partial<Record<ErrorCode, number>> = {
  BAD_INPUT: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  CONFLICT: 409,
  TOO_LARGE: 413,
  BACKEND_UNAVAILABLE: 503,
};

const CODE_FOR_STATUS: Record<number, ErrorCode> = { 400: 'BAD_INPUT', 401: 'UNAUTHORIZED', 404: 'NOT_FOUND', 409: 'CONFLICT', 413: 'TOO_LARGE', 503: 'BACKEND_UNAVAILABLE' };

/** The status, code and message a failed request is answered with. */
function describeError(err: unknown): { status: number; code: ErrorCode; message: string } {
  if (err instanceof CairnError) return { status: STATUS[err.code] ?? 500, code: err.code, message: err.message };
  const status = (err as FastifyError).statusCode;
  if (status === 415) return { status, code: 'BAD_INPUT', message: `unsupported content type: ${SEND_MULTIPART}` };
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return { status, code: CODE_FOR_STATUS[status] ?? 'BAD_INPUT', message: (err as Error).message };
  }
  return { status: 500, code: 'INTERNAL', message: 'internal error: the receiver logged the details' };
}

function sendError(req: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const { status, code, message } = describeError(err);
  // A client that went away mid-request is not the receiver's failure (and reads no answer).
  if (req.raw.destroyed && !req.raw.complete) req.log.warn({ reason: (err as Error).message }, 'client disconnected before the request was complete; nothing stored');
  else if (status >= 500) req.log.error({ err }, 'request failed');
  else req.log.info({ code, message }, 'request refused');
  if (!req.raw.complete) discardRest(req, reply);
  return reply.code(status).send({ error: { code, message }, message });
}

/**
 * A refusal can come before the body was read (too large, duplicate, bad name). Closing the
 * connection at once could reset it while the client is still sending, and the client would lose
 * the answer; so the rest of the body is read and dropped until the client stops sending, for at
 * most LINGER_MS after the answer, as web servers do on a "lingering close".
 */
function discardRest(req: FastifyRequest, reply: FastifyReply): void {
  const raw = req.raw;
  raw.unpipe();
  raw.resume();
  reply.raw.once('finish', () => {
    if (raw.complete) return;
    const timer = setTimeout(() => raw.socket?.destroy(), LINGER_MS);
    raw.once('close', () => clearTimeout(timer));
  });
}

function bearerCheck(token: string): (req: FastifyRequest, reply: FastifyReply) => Promise<void> {
  return async (req, reply) => {
    const m = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '');
    if (!m || !sameSecret(m[1], token)) {
      reply.header('www-authenticate', 'Bearer realm="cairn-receiver"');
      throw new CairnError('UNAUTHORIZED', 'missing or wrong bearer token: send "Authorization: Bearer <token>"');
    }
  };
}

/** Opens the store, removes temporary files an earlier run left, and builds the app (not listening). */
export async function buildReceiver(opts: ReceiverOptions): Promise<Receiver> {
  const maxSize = opts.maxSize ?? DEFAULT_MAX_SIZE;
  if (opts.keep !== undefined && (!Number.isSafeInteger(opts.keep) || opts.keep < 1)) throw new CairnError('BAD_INPUT', `invalid keep ${opts.keep}: keep at least 1 archive per database`);
  if (opts.token !== undefined && opts.token === '') throw new CairnError('BAD_INPUT', 'the bearer token is empty');
  const store = await ReceiverStore.open({ storage: opts.storage, catalog: opts.catalog });
  try {
    const swept = await sweepTempFiles(store.storage);
    if (swept.length > 0) opts.logger?.info({ files: swept }, 'removed temporary files of interrupted uploads');
    const app = Fastify({ loggerInstance: opts.logger });
    app.setErrorHandler((err, req, reply) => sendError(req, reply, err));
    app.setNotFoundHandler((req, reply) => sendError(req, reply, new CairnError('NOT_FOUND', `no route ${req.method} ${req.url}`)));
    if (opts.token !== undefined) app.addHook('onRequest', bearerCheck(opts.token));
    // Uploads in flight when the receiver is stopped finish; their connections then close
    // instead of idling on keep-alive and holding the shutdown up.
    let closing = false;
    app.addHook('preClose', async () => {
      closing = true;
    });
    app.addHook('onSend', async (_req, reply) => {
      if (closing) reply.header('connection', 'close');
    });
    await app.register(receiverRoutes, { store, maxSize, keep: opts.keep });
    app.addHook('onClose', () => store.close());
    await app.ready();
    return { app, store };
  } catch (err) {
    await store.close();
    throw err;
  }
}

/** Builds the receiver and listens; `port: 0` picks a free port (see `url`). Host defaults to 127.0.0.1. */
export async function startReceiver(opts: ReceiverOptions & { port?: number; host?: string }): Promise<RunningReceiver> {
  const receiver = await buildReceiver(opts);
  const host = opts.host ?? '127.0.0.1';
  try {
    await receiver.app.listen({ port: opts.port ?? 0, host });
  } catch (err) {
    await receiver.app.close();
    throw new CairnError('BAD_INPUT', `cannot listen on ${host}:${opts.port ?? 0}: ${(err as Error).message}`, { cause: err });
  }
  const { port } = receiver.app.server.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return { ...receiver, url, port, close: () => receiver.app.close() };
}
