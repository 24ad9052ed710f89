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
import { startChildServer } from '../../src/util/child-server.js';
import { haveTool } from './tools.js';

export interface RestServer {
  /** `http://127.0.0.1:PORT/` */
  url: string;
  stop(): Promise<void>;
}

export const HAVE_RCLONE = haveTool('rclone', 'apt-get install -y rclone');

export async function startRestServer(storage: string, extraArgs: string[] = []): Promise<RestServer> {
  const server = await startChildServer('rclone', ['serve', 'restic', '--addr', '127.0.0.1:0', ...extraArgs, storage], 'stderr', /Serving restic REST API on (http:\/\/\S+\/)/, {
    RCLONE_CONFIG: '/dev/null',
  });
  return { url: server.match[1], stop: server.stop };
}
