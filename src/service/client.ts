/**
 * A small client of the daemon's API for the CLI. The daemon is found through `--daemon URL`,
 * `CAIRN_DAEMON`, or the `daemon.json` the daemon writes into its data folder; the token is read
 * from `--token-file`, `CAIRN_TOKEN_FILE` or DATA_DIR/api-token (never from the command line).
 */
import fs from 'node:fs';
import path from 'node:path';
import { CairnError, type ErrorCode } from '../errors.js';
import { DEFAULT_PORT } from './config.js';
import { readSecretFile } from './secrets.js';

export interface ClientOptions {
  daemon?: string;
  dataDir?: string;
  tokenFile?: string;
}

export class DaemonClient {
  readonly url: string;
  readonly #token: string;

  constructor(o: ClientOptions) {
    const dataDir = path.resolve(o.dataDir ?? process.env.CAIRN_DATA_DIR ?? 'cairn-data');
    let url = o.daemon ?? process.env.CAIRN_DAEMON;
    if (!url) {
      try {
        url = (JSON.parse(fs.readFileSync(path.join(dataDir, 'daemon.json'), 'utf8')) as { url: string }).url;
      } catch {
        url = `http://127.0.0.1:${DEFAULT_PORT}`;
      }
    }
    this.url = url.replace(/\/+$/, '');
    const tokenFile = o.tokenFile ?? process.env.CAIRN_TOKEN_FILE ?? path.join(dataDir, 'api-token');
    try {
      this.#token = readSecretFile(tokenFile, 'API token');
    } catch (err) {
      throw new CairnError('BAD_INPUT', `${(err as Error).message}: point to the daemon's data folder with --data-dir (or CAIRN_DATA_DIR), or to the token with --token-file`);
    }
  }

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${this.#token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new CairnError('BACKEND_UNAVAILABLE', `cannot reach the cairn daemon at ${this.url} (${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}): start it with "cairn daemon", or point to it with --daemon URL or CAIRN_DAEMON`);
    }
    const text = await res.text();
    const data = text ? (JSON.parse(text) as unknown) : undefined;
    if (!res.ok) {
      const e = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new CairnError((e?.code as ErrorCode) ?? 'INTERNAL', e?.message ?? `the daemon answered ${res.status}`);
    }
    return data as T;
  }
}
