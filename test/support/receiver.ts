/**
 * Helpers for tests of the dump receiver: archive names and small dump zips, JSON requests, raw
 * requests that no HTTP client would send, and folder listings.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';
import { CLI } from './tools.js';

/** `mysql-YYYY-MM-DD-HH-mm-ss-{database}-{uuid}.sql.zip`, as the dump pipeline names its archives. */
export function archiveName(database: string, engine: 'mysql' | 'postgres' = 'mysql', when = new Date()): string {
  const stamp = when.toISOString().slice(0, 19).replace('T', '-').replace(/:/g, '-');
  return `${engine}-${stamp}-${database}-${randomUUID()}.sql.zip`;
}

export interface TestArchive {
  path: string;
  fileName: string;
  sha256: string;
  size: number;
}

/** Writes a zip holding one `.sql` entry into `dir`, under `fileName` (an archive name by default). */
export async function writeDumpZip(dir: string, database: string, opts: { fileName?: string; engine?: 'mysql' | 'postgres'; sql?: string | Buffer } = {}): Promise<TestArchive> {
  const fileName = opts.fileName ?? archiveName(database, opts.engine);
  const file = path.join(dir, fileName);
  const zip = new yazl.ZipFile();
  zip.addBuffer(Buffer.from(opts.sql ?? `-- dump of ${database}\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n`), fileName.replace(/\.zip$/, ''));
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(file));
  return describeFile(file);
}

/** Size and SHA-256 of a file. */
export async function describeFile(file: string): Promise<TestArchive> {
  const bytes = await fs.readFile(file);
  return { path: file, fileName: path.basename(file), sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

export interface JsonResponse {
  status: number;
  headers: Headers;
  body: unknown;
}

export async function requestJson(url: string, init: RequestInit = {}): Promise<JsonResponse> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: kept as text, which the assertions then show.
  }
  return { status: res.status, headers: res.headers, body };
}

/** The error body the receiver answers every refusal with. */
export function errorBody(code: string, message: string): unknown {
  return { error: { code, message }, message };
}

/** Sends `head` (request line and headers, no blank line) with `body` over a plain socket and returns status and body text. */
export function rawRequest(url: string, head: string, body: Buffer | string = ''): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: hostname, port: Number(port) });
    const chunks: Buffer[] = [];
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    s.write(`${head}\r\nHost: ${hostname}\r\nConnection: close\r\n\r\n`);
    // Not end(): Node's HTTP server takes a half-closed connection for an aborted request.
    s.write(body);
  });
}

/**
 * Starts a multipart upload of `declared` file bytes over a plain socket, sends only `sent` of them,
 * waits until the receiver has begun a temporary file in `storage`, then drops the connection.
 */
export async function dropUploadMidway(url: string, dbPath: string, fileName: string, storage: string, sent: number, declared: number): Promise<void> {
  const { hostname, port } = new URL(url);
  const boundary = 'cairn-dropped-upload';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${fileName}"\r\nContent-Type: application/zip\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const s = net.connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  s.write(
    `POST ${dbPath} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\n` +
      `Content-Length: ${head.length + declared + tail.length}\r\n\r\n`,
  );
  s.write(head);
  s.write(Buffer.alloc(sent, 0x5a));
  await waitFor(async () => (await tempFiles(storage)).length > 0, 'a temporary upload file to appear');
  s.destroy();
}

/** Names of the receiver's temporary upload files in `storage`. */
export async function tempFiles(storage: string): Promise<string[]> {
  return (await fs.readdir(storage)).filter((n) => n.startsWith('.cairn-upload-'));
}

export async function waitFor(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Every path below `dir`, relative and sorted, folders with a trailing slash. */
export async function listTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fs.readdir(dir, { withFileTypes: true, recursive: true })) {
    const rel = path.relative(dir, path.join(e.parentPath, e.name));
    out.push(e.isDirectory() ? `${rel}/` : rel);
  }
  return out.sort();
}

export interface ReceiverProcess {
  child: ChildProcess;
  url: string;
  /** What the process wrote to stderr (its pino logs) so far. */
  stderr(): string;
  /** Sends SIGTERM and waits for the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `cairn receiver` (from dist/: run `npm run build` first) with `args`, and waits until it listens. */
export async function startReceiverProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ReceiverProcess> {
  const child = spawn(process.execPath, [CLI, 'receiver', '--port', '0', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+?),/.exec(out);
      if (m) resolve(m[1]);
    });
    void exited.then((code) => reject(new Error(`cairn receiver exited ${code} before listening: ${err}`)));
  });
  return {
    child,
    url,
    stderr: () => err,
    stop: async () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
