import { rmSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DbLocation } from './url.js';

/** Folders with secrets in them that must go even when the process ends abruptly. */
const live = new Set<string>();
let hooked = false;

function removeAllSync(): void {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
  live.clear();
}

/**
 * A private 0700 folder for the files that hand a password to a dump tool: a MySQL option file
 * (`--defaults-extra-file`) or a PostgreSQL passfile (`PGPASSFILE`). Passwords never travel in argv
 * or in an environment variable, where `ps e` and /proc/PID/environ would show them. The folder is
 * removed by `remove()`, and on process exit for what a crash left behind.
 */
export class CredentialDir {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = dir;
  }

  static async create(base = os.tmpdir()): Promise<CredentialDir> {
    const dir = await fs.mkdtemp(path.join(base, 'cairn-cred-'));
    await fs.chmod(dir, 0o700);
    live.add(dir);
    if (!hooked) {
      hooked = true;
      process.once('exit', removeAllSync);
    }
    return new CredentialDir(dir);
  }

  /** A MySQL/MariaDB option file with the password, for `--defaults-extra-file` (must be the first argument). */
  async mysqlOptionFile(loc: DbLocation, name = 'my.cnf'): Promise<string> {
    const file = path.join(this.dir, name);
    const lines = ['[client]', `user=${quoteOption(loc.user)}`];
    // Without a password line the client would read none, which is what an empty password means too.
    lines.push(`password=${quoteOption(loc.password ?? '')}`);
    await fs.writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    return file;
  }

  /** A PostgreSQL passfile (for `PGPASSFILE`) that answers for this server, database and user only. */
  async pgPassFile(loc: DbLocation, name = 'pgpass'): Promise<string> {
    const file = path.join(this.dir, name);
    const field = (v: string): string => v.replace(/[\\:]/g, (c) => `\\${c}`);
    await fs.writeFile(file, `*:*:*:${field(loc.user)}:${field(loc.password ?? '')}\n`, { mode: 0o600 });
    return file;
  }

  async remove(): Promise<void> {
    live.delete(this.dir);
    await fs.rm(this.dir, { recursive: true, force: true });
  }
}

/** MySQL option files read `"…"` with backslash escapes, so any byte of a password survives. */
function quoteOption(v: string): string {
  return `"${v.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')}"`;
}

/** Runs `fn` with a credential folder that is removed afterwards, whatever happens. */
export async function withCredentials<T>(fn: (cred: CredentialDir) => Promise<T>, base?: string): Promise<T> {
  const cred = await CredentialDir.create(base);
  try {
    return await fn(cred);
  } finally {
    await cred.remove();
  }
}
