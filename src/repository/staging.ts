import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { processAlive } from './lock.js';

/**
 * Staged files: packs that workers write to disk before the backend takes them (for a local
 * repository, by a rename into data/xx). Their names never look like ids, so no backend lists them
 * and restic ignores them; they name the host and process that wrote them, so a later run can tell
 * the leftovers of a crashed process from the files of one still running.
 *
 *   .cairn-tmp-<host>-<pid>-<token>-<worker>-<n>
 */
const NAME = /^\.cairn-tmp-([A-Za-z0-9_]*)-(\d+)-[0-9a-f]+-\d+-\d+$/;
/** Files of another host (or of a live process whose pid was reused) are swept once this old. */
const STALE_MS = 24 * 60 * 60 * 1000;

function hostTag(): string {
  return os.hostname().replace(/[^A-Za-z0-9]/g, '_');
}

/** A name prefix unique to this process and call; a worker appends `<worker>-<n>`. */
export function stagingPrefix(): string {
  return `.cairn-tmp-${hostTag()}-${process.pid}-${randomBytes(6).toString('hex')}-`;
}

/**
 * Removes staged files that no running process will finish: those of dead processes on this host,
 * and any older than a day. Errors are ignored: a leftover costs disk space, never correctness.
 */
export async function sweepStaging(folder: string): Promise<number> {
  let names: string[];
  try {
    names = await fs.readdir(folder);
  } catch {
    return 0;
  }
  const host = hostTag();
  let removed = 0;
  for (const name of names) {
    const m = NAME.exec(name);
    if (!m) continue;
    const file = path.join(folder, name);
    let stale = m[1] === host && !processAlive(Number(m[2]));
    if (!stale) {
      try {
        stale = Date.now() - (await fs.stat(file)).mtimeMs > STALE_MS;
      } catch {
        continue;
      }
    }
    if (stale) {
      try {
        await fs.rm(file, { force: true });
        removed++;
      } catch {
        // Best effort.
      }
    }
  }
  return removed;
}

/** Removes every staged file whose name starts with `prefix` (this process's, after an error or abort). */
export async function removeStaged(folder: string, prefix: string): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(folder);
  } catch {
    return;
  }
  await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => fs.rm(path.join(folder, n), { force: true }).catch(() => undefined)));
}
