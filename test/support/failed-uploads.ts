import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { Backend, Handle } from '../../src/backend/backend.js';

/** How many of this process's descriptors are open on `file`. */
function descriptorsOn(file: string): number {
  return fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === file;
    } catch {
      return false;
    }
  }).length;
}

/**
 * Uploads a staged file with `saveFile` through backends that `make` opens on a server's base URL,
 * twice: while the server finds nothing on HEAD (the look before the write) and answers the upload
 * itself `refusal` at once, without reading it; then with the server gone. Both must fail as
 * `refused` and `unreachable` say, the file must stay where it was, and no descriptor of this
 * process may be left open on it (a daemon retrying an unreachable server would run out of them).
 */
export async function expectFailedUploadsKeepFileClosed(
  make: (url: string) => Backend,
  refusal: { status: number; headers?: http.OutgoingHttpHeaders; body?: string },
  refused: object,
  unreachable: RegExp,
): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cairn-upload-'));
  const file = path.join(dir, 'staged');
  fs.writeFileSync(file, randomBytes(4 * 1024 * 1024));
  const server = http.createServer((req, res) => {
    if (req.method === 'HEAD') res.writeHead(404).end();
    else res.writeHead(refusal.status, refusal.headers).end(refusal.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const h: Handle = { type: 'data', name: 'cd'.repeat(32) };
  const attempt = async (expectation: (p: Promise<void>) => Promise<void>) => {
    const b = make(url);
    try {
      await expectation(b.saveFile!(h, file));
    } finally {
      await b.close?.();
    }
  };
  try {
    await attempt((p) => expect(p).rejects.toMatchObject(refused));
    await new Promise<void>((r) => server.close(() => r()));
    await attempt((p) => expect(p).rejects.toThrow(unreachable));
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(file)).toBe(true);
    expect(descriptorsOn(file)).toBe(0);
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
