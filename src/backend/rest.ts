import { createReadStream, type ReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { readFile, rm, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { CairnError } from '../errors.js';
import type { Backend, FileInfo, FileType, Handle } from './backend.js';
import { checkAborted, FOLDERS, handleKey, ID, label } from './files.js';
import { loadIntoRange, loadRange, networkFailure, saveOnce, type BodyAnswer, type RangedAnswer } from './remote.js';

const V2 = 'application/vnd.x.restic.rest.v2';

export interface RestLocation {
  /** The repository's URL without credentials, ending in '/'. */
  url: URL;
  /** `Basic …` for servers behind a password, from the location or the environment. */
  authorization?: string;
  /** The location as messages show it, the password masked: `rest:http://user:***@host:8000/repo/`. */
  display: string;
}

const USAGE = 'write it as rest:http://host:port/ or rest:https://user:password@host:port/path/';

/**
 * Parses what follows `rest:` in a restic location: `http://host:port/path/`, with an optional
 * `user:password@` (percent-encoded), as restic writes it. Without credentials in the location,
 * CAIRN_REST_USERNAME and CAIRN_REST_PASSWORD (or restic's RESTIC_REST_…) are used when set.
 */
export function parseRestLocation(spec: string, env: NodeJS.ProcessEnv = process.env): RestLocation {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new CairnError('BAD_INPUT', `invalid REST location: ${USAGE}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CairnError('BAD_INPUT', `invalid REST location (http or https only): ${USAGE}`);
  if (url.search || url.hash) throw new CairnError('BAD_INPUT', `invalid REST location (no ? or # allowed): ${USAGE}`);
  const inLocation = url.username !== '' || url.password !== '';
  const user = inLocation ? decodeURIComponent(url.username) : (env.CAIRN_REST_USERNAME ?? env.RESTIC_REST_USERNAME ?? '');
  const password = inLocation ? decodeURIComponent(url.password) : (env.CAIRN_REST_PASSWORD ?? env.RESTIC_REST_PASSWORD ?? '');
  const shownUser = inLocation ? `${url.username}${url.password ? ':***' : ''}@` : '';
  url.username = '';
  url.password = '';
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return {
    url,
    authorization: user || password ? `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` : undefined,
    display: `rest:${url.protocol}//${shownUser}${url.host}${url.pathname}`,
  };
}

/** A URL as messages may show it: without user name and password. */
function redactUrl(text: string): string {
  try {
    const u = new URL(text);
    u.username = '';
    u.password = '';
    return u.href;
  } catch {
    return JSON.stringify(text.slice(0, 200));
  }
}

/** Where `h` lives on a REST server: `config` or `<folder>/<id>` (data files too: the server lays them out). */
function restPath(h: Handle): string {
  const key = handleKey(h);
  return h.type === 'data' ? `data/${h.name}` : key;
}

interface RequestOptions {
  /** A buffer, or a file streamed from disk (`length` bytes) so that it is never held in memory. */
  body?: Uint8Array | { path: string; length: number };
  range?: string;
  signal?: AbortSignal;
}

/**
 * A client of restic's REST protocol (version 2): restic's rest-server, `rclone serve restic`,
 * and anything else that speaks it. Files are POSTed whole; loads ask for byte ranges; listings
 * come with sizes. The protocol has no conditional writes, so `saveOnce` looks before it writes.
 */
export class RestBackend implements Backend {
  readonly location: string;
  readonly #loc: RestLocation;

  /** Kept-alive connections for range reads (see #getRange). */
  readonly #agent: http.Agent;

  constructor(loc: RestLocation) {
    this.#loc = loc;
    this.location = loc.display;
    this.#agent = loc.url.protocol === 'https:' ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  async create(): Promise<void> {
    if (await this.exists()) throw new CairnError('REPO_EXISTS', `a repository already exists at ${this.location}`);
    const res = await this.#request('POST', '?create=true', 'creating the repository');
    await this.#expectOk(res, 'creating the repository');
  }

  save(h: Handle, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    const p = restPath(h);
    const doing = `saving ${label(h)}`;
    return saveOnce(this, h, data, this.location, signal, async () => {
      const res = await this.#request('POST', p, doing, { body: data, signal });
      await this.#expectOk(res, doing, h);
    });
  }

  /**
   * Uploads a local file as it is read (a staged pack), so a backup holds no pack in memory to
   * send it; removes the file once it is stored. Looks before it writes, as `save` does.
   */
  async saveFile(h: Handle, path: string, signal?: AbortSignal): Promise<void> {
    const p = restPath(h);
    const doing = `saving ${label(h)}`;
    const { size } = await stat(path);
    await saveOnce(this, h, { size, read: () => readFile(path) }, this.location, signal, async () => {
      const res = await this.#request('POST', p, doing, { body: { path, length: size }, signal });
      await this.#expectOk(res, doing, h);
    });
    await rm(path, { force: true });
  }

  load(h: Handle, offset = 0, length?: number, signal?: AbortSignal): Promise<Buffer> {
    const p = restPath(h);
    const doing = `loading ${label(h)}`;
    return loadRange(
      { h, where: this.location, offset, length, signal },
      async (range): Promise<RangedAnswer | 'unsatisfiable'> => {
        const res = await this.#request('GET', p, doing, { range, signal });
        if (res.status === 416) {
          await res.body?.cancel();
          return 'unsatisfiable';
        }
        if (res.status !== 200 && res.status !== 206) throw await this.#failure(res, doing, h);
        let body: Buffer;
        try {
          body = Buffer.from(await res.arrayBuffer());
        } catch (err) {
          throw networkFailure(err, doing, this.location);
        }
        return { partial: res.status === 206, contentRange: res.headers.get('content-range') ?? undefined, body };
      },
      async () => (await this.stat(h)).size,
    );
  }

  /**
   * As `load` of `into.length` bytes, streamed into the caller's buffer: a restore or check reuses
   * a few buffers instead of allocating (and faulting in) a fresh one per range. An answer other
   * than the exact range asked for goes through `load`, which handles every kind of server.
   */
  loadInto(h: Handle, offset: number, into: Buffer, signal?: AbortSignal): Promise<void> {
    return loadIntoRange(this, { h, offset, into, signal }, (range) => this.#getRange(restPath(h), `loading ${label(h)}`, range, signal));
  }

  /**
   * A range GET through node:http rather than fetch: a restore reads every pack this way, and
   * fetch's web streams cost a promise and more garbage per chunk (on the benchmark corpus the main
   * thread spent a second in garbage collection). Anything but the exact range falls back to `load`.
   */
  #getRange(p: string, doing: string, range: string, signal?: AbortSignal): Promise<BodyAnswer> {
    checkAborted(signal, doing);
    const headers = this.#headers(range);
    const url = new URL(p, this.#loc.url);
    const request = url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(url, { method: 'GET', headers, agent: this.#agent, signal }, (res) => {
        resolve({ status: res.statusCode, contentRange: res.headers['content-range'], body: res, discard: () => res.destroy() });
      });
      req.on('error', (err) => reject(networkFailure(err, doing, this.location)));
      req.end();
    });
  }

  async stat(h: Handle): Promise<FileInfo> {
    const doing = `reading ${label(h)}`;
    const res = await this.#request('HEAD', restPath(h), doing);
    if (res.status !== 200) throw await this.#failure(res, doing, h);
    const size = Number(res.headers.get('content-length'));
    if (!Number.isSafeInteger(size) || size < 0) throw new CairnError('BACKEND_UNAVAILABLE', `${doing} at ${this.location}: the server sent no file size`);
    return { name: h.name, size };
  }

  async *list(type: FileType, signal?: AbortSignal): AsyncIterable<FileInfo> {
    const doing = `listing ${type} files`;
    checkAborted(signal, doing);
    if (type === 'config') {
      try {
        yield await this.stat({ type, name: '' });
      } catch (err) {
        if (!(err instanceof CairnError && err.code === 'NOT_FOUND')) throw err;
      }
      return;
    }
    const res = await this.#request('GET', `${FOLDERS[type]}/`, doing, { signal });
    if (res.status === 404) {
      await res.body?.cancel();
      return;
    }
    if (res.status !== 200) throw await this.#failure(res, doing);
    if (!res.headers.get('content-type')?.startsWith(V2)) {
      await res.body?.cancel();
      throw new CairnError('BAD_INPUT', `${this.location} speaks only version 1 of restic's REST protocol; cairn needs version 2 (rest-server 0.9.7 or later, rclone serve restic)`);
    }
    let listing: unknown;
    try {
      listing = await res.json();
    } catch (err) {
      if (err instanceof SyntaxError) throw new CairnError('BACKEND_UNAVAILABLE', `${doing} at ${this.location}: the server sent a listing that is not JSON`);
      throw networkFailure(err, doing, this.location);
    }
    if (!Array.isArray(listing)) throw new CairnError('BACKEND_UNAVAILABLE', `${doing} at ${this.location}: the server sent a listing that is not a list`);
    for (const f of listing as { name?: unknown; size?: unknown }[]) {
      if (typeof f?.name === 'string' && ID.test(f.name) && typeof f.size === 'number') yield { name: f.name, size: f.size };
    }
  }

  async remove(h: Handle): Promise<void> {
    const doing = `removing ${label(h)}`;
    const res = await this.#request('DELETE', restPath(h), doing);
    if (res.status === 404) {
      await res.body?.cancel();
      return;
    }
    await this.#expectOk(res, doing, h);
  }

  async exists(): Promise<boolean> {
    const res = await this.#request('HEAD', 'config', 'reading the config file');
    // An empty config is what an init that failed on a full server leaves: no repository.
    if (res.status === 200) return res.headers.get('content-length') !== '0';
    if (res.status === 404) return false;
    throw await this.#failure(res, 'reading the config file');
  }

  /** Closes the range reads' connections; the others belong to Node's shared fetch pool, which lets idle ones go. */
  async close(): Promise<void> {
    this.#agent.destroy();
  }

  /** What every request sends: the protocol version, the credentials, and the range when one is asked for. */
  #headers(range?: string): Record<string, string> {
    const headers: Record<string, string> = { Accept: V2 };
    if (this.#loc.authorization) headers.Authorization = this.#loc.authorization;
    if (range) headers.Range = range;
    return headers;
  }

  async #request(method: string, p: string, doing: string, o: RequestOptions = {}): Promise<Response> {
    const headers = this.#headers(o.range);
    if (o.body) headers['Content-Type'] = 'application/octet-stream';
    checkAborted(o.signal, doing);
    let body: RequestInit['body'] | undefined;
    let file: ReadStream | undefined;
    if (o.body instanceof Uint8Array) body = o.body;
    else if (o.body) {
      headers['Content-Length'] = String(o.body.length);
      file = createReadStream(o.body.path);
      body = Readable.toWeb(file) as ReadableStream<Uint8Array>;
    }
    try {
      return await fetch(new URL(p, this.#loc.url), { method, headers, body, signal: o.signal, redirect: 'manual', ...(file ? { duplex: 'half' } : {}) });
    } catch (err) {
      throw networkFailure(err, doing, this.location);
    } finally {
      // Once there is an answer (or none will come) the rest of the file is not needed: a server
      // that answered early, or could not be reached, must not leave the file open.
      file?.destroy();
    }
  }

  async #expectOk(res: Response, doing: string, h?: Handle): Promise<void> {
    if (res.status >= 200 && res.status < 300) {
      await res.body?.cancel();
      return;
    }
    throw await this.#failure(res, doing, h);
  }

  /**
   * An HTTP error answer as a CairnError: 404 is `NOT_FOUND`, refused credentials and other
   * refusals `BAD_INPUT` (permanent), a server out of room `NO_SPACE` (permanent: retries would
   * only wait), 408, 429 and other 5xx transient. The server's text is quoted, the
   * credentials never.
   */
  async #failure(res: Response, doing: string, h?: Handle): Promise<CairnError> {
    const text = (await res.text().catch(() => '')).trim().slice(0, 200);
    const answered = `${res.status}${res.statusText ? ` ${res.statusText}` : ''}${text ? ` (${text})` : ''}`;
    const where = this.location;
    if (res.status === 404) return new CairnError('NOT_FOUND', `${h ? label(h) : 'the file'} in ${where} does not exist`);
    if (res.status === 401 || res.status === 403) {
      return new CairnError('BAD_INPUT', `${where} refused access while ${doing} (${res.status}): check the user name and password in the location (or CAIRN_REST_USERNAME and CAIRN_REST_PASSWORD)`);
    }
    if (outOfRoom(res.status, text)) return new CairnError('NO_SPACE', `${where} has no room left while ${doing}: the server answered ${answered}; free space there (or raise its quota) and run the command again`);
    if (res.status === 408 || res.status === 429 || res.status >= 500) return new CairnError('BACKEND_UNAVAILABLE', `${doing} at ${where} failed: the server answered ${answered}`);
    // A body sent once cannot follow a redirect safely, and a moved repository should be named where it is.
    const moved = res.status >= 300 && res.status < 400 ? res.headers.get('location') : null;
    if (moved) return new CairnError('BAD_INPUT', `${doing} at ${where} failed: the server redirects (${res.status}) to ${redactUrl(moved)}; use that location`);
    return new CairnError('BAD_INPUT', `${doing} at ${where} failed: the server answered ${answered}`);
  }
}

/**
 * Whether an error answer says the server has no room for what was sent: 507 Insufficient
 * Storage (restic's rest-server on a full disk), 413 with its quota message (rest-server's
 * --max-size), or another error whose text says so (rclone's serve restic answers 500 with the
 * file system's message).
 */
function outOfRoom(status: number, text: string): boolean {
  if (status === 507) return true;
  return (status === 413 || status >= 500) && /no space left|disk space|insufficient storage|quota|disk full|storage full/i.test(text);
}
