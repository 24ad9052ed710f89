/**
 * The real `cairn daemon` process for end-to-end tests: started on a free port in a fresh data
 * folder, found through the daemon.json it writes, driven through its API and the CLI.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { CLI, runCommand, tempDir, type RunResult } from './tools.js';

export interface ApiReply<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export interface DaemonProcess {
  dataDir: string;
  url: string;
  token: string;
  child: ChildProcess;
  /** What the daemon wrote to stderr so far. */
  log(): string;
  api<T = Record<string, unknown>>(method: string, route: string, body?: unknown, headers?: Record<string, string>): Promise<ApiReply<T>>;
  /** Runs `cairn ARGS` against this daemon (the CLI finds it through --data-dir). */
  cli(args: string[]): Promise<RunResult>;
  /** Sends a signal and resolves with the exit code (or the signal's name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

export const TEST_ENV = { CAIRN_KDF_N: '1024', CAIRN_LOG_LEVEL: 'info' };

/** Polls `fn` until it returns something truthy; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

export async function startDaemon(opts: { dataDir?: string; config?: Record<string, unknown>; env?: NodeJS.ProcessEnv; args?: string[] } = {}): Promise<DaemonProcess> {
  const dataDir = opts.dataDir ?? path.join(await tempDir('cairn-daemon-'), 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const info = path.join(dataDir, 'daemon.json');
  fs.rmSync(info, { force: true });
  const args = [CLI, 'daemon', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...(opts.args ?? [])];
  if (opts.config) {
    const file = path.join(path.dirname(dataDir), 'cairn.json');
    fs.writeFileSync(file, JSON.stringify(opts.config));
    args.push('--config', file);
  }
  const child = spawn(process.execPath, args, { env: { ...process.env, ...TEST_ENV, ...opts.env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const url = await waitFor(
    'the daemon to listen',
    () => {
      if (child.exitCode !== null) throw new Error(`the daemon exited ${child.exitCode}: ${stderr.slice(-3000)}`);
      if (!fs.existsSync(info)) return null;
      const j = JSON.parse(fs.readFileSync(info, 'utf8')) as { url: string; pid: number };
      return j.pid === child.pid ? j.url : null;
    },
    30_000,
  ).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}\n${stderr.slice(-3000)}`);
  });
  const token = fs.readFileSync(path.join(dataDir, 'api-token'), 'utf8').trim();
  return {
    dataDir,
    url,
    token,
    child,
    log: () => stderr,
    async api(method, route, body, headers) {
      const res = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        // not JSON (metrics)
      }
      return { status: res.status, body: parsed as never };
    },
    cli: (a) => runCommand(process.execPath, [CLI, ...a, '--data-dir', dataDir], { env: { ...TEST_ENV, CAIRN_DAEMON: '' } }),
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface SseEvent {
  id?: string;
  event: string;
  data: Record<string, unknown>;
}

/** Follows a server-sent event stream until the server ends it; `onEvent` sees each event as it comes. */
export async function followEvents(url: string, token: string, onEvent: (e: SseEvent) => void = () => undefined): Promise<SseEvent[]> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' } });
  if (res.status !== 200) throw new Error(`events answered ${res.status}: ${await res.text()}`);
  expectEventStream(res.headers.get('content-type'));
  const events: SseEvent[] = [];
  let buf = '';
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const e: Partial<SseEvent> = {};
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) e.id = line.slice(4);
          else if (line.startsWith('event: ')) e.event = line.slice(7);
          else if (line.startsWith('data: ')) e.data = JSON.parse(line.slice(6)) as Record<string, unknown>;
        }
        if (e.event && e.data) {
          events.push(e as SseEvent);
          onEvent(e as SseEvent);
        }
      }
    }
  } catch {
    // The server went away (a daemon that stops closes its streams).
  }
  return events;
}

function expectEventStream(type: string | null): void {
  if (!type?.startsWith('text/event-stream')) throw new Error(`events came as ${type}, not text/event-stream`);
}
