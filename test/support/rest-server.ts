/**
 * A restic REST server for tests: `rclone serve restic` (Debian package rclone) on a free loopback
 * port, in a child process. `storage` is a folder (a restic repository appears in it, readable by
 * restic as a local repository) or ':memory:'.
 *
 * rclone 1.60 writes files into a folder in place: while a file uploads, a listing shows it
 * partly written. restic's rest-server, like S3, never does. The conformance suite (which checks
 * that a file being saved is never listed) therefore runs against rclone's memory storage, which
 * stores a file once it has arrived whole.
 */
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { haveTool } from './tools.js';

export interface RestServer {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  stop(): Promise<void>;
}

export const HAVE_RCLONE = haveTool('rclone', 'apt-get install -y rclone');

export async function startRestServer(storage: string, extraArgs: string[] = []): Promise<RestServer> {
  const child = spawn('rclone', ['serve', 'restic', '--addr', '127.0.0.1:0', ...extraArgs, storage], {
    env: { ...process.env, RCLONE_CONFIG: '/dev/null' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const lines: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stderr });
    rl.on('line', (line) => {
      lines.push(line);
      const m = /Serving restic REST API on (http:\/\/\S+\/)/.exec(line);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`rclone serve restic exited ${code} before listening:\n${lines.join('\n')}`)));
    child.once('error', reject);
  });
  return {
    url,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
