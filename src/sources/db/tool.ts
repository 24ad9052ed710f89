import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { CairnError } from '../../errors.js';

/** Variables that may hold a secret; a child tool never inherits them. */
const SECRET_ENV = ['CAIRN_DB_PASSWORD', 'CAIRN_PASSWORD', 'RESTIC_PASSWORD', 'PGPASSWORD', 'MYSQL_PWD'];

const found = new Map<string, string | null>();

/** The first of `names` found on PATH (`mariadb-dump` before `mysqldump`), or an error naming them all. */
export function findTool(names: string[], hint: string): string {
  for (const name of names) {
    if (!found.has(name)) {
      const dirs = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
      const hit = dirs.map((d) => path.join(d, name)).find((p) => {
        try {
          accessSync(p, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      });
      found.set(name, hit ?? null);
    }
    const hit = found.get(name);
    if (hit) return hit;
  }
  throw new CairnError('BAD_INPUT', `${names.join(' or ')} is not installed: ${hint}`);
}

/** A running tool: its stdout and stdin as streams, and `done`, which settles when it has exited. */
export interface ToolRun {
  child: ChildProcess;
  stdout: Readable;
  stdin: Writable;
  /** Resolves when the tool exits 0; otherwise rejects with its stderr (secrets removed) in the message. */
  done: Promise<void>;
}

/**
 * Starts a dump or load tool without a shell. `env` adds to the environment minus every variable
 * that could carry a password; `secrets` are blanked out of any stderr that reaches a message.
 */
export function startTool(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; secrets?: (string | undefined)[]; signal?: AbortSignal; what: string }): ToolRun {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  for (const k of SECRET_ENV) delete env[k];
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'], signal: opts.signal });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString('utf8')).slice(-8000);
  });
  child.stdin!.on('error', () => undefined);
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', (err) => reject(new CairnError(opts.signal?.aborted ? 'INTERRUPTED' : 'INTERNAL', `${opts.what}: cannot run ${path.basename(cmd)}: ${err.message}`)));
    child.on('close', (code, sig) => {
      if (code === 0) return resolve();
      if (opts.signal?.aborted) return reject(new CairnError('INTERRUPTED', `${opts.what}: interrupted`));
      let text = stderr.trim();
      for (const s of opts.secrets ?? []) if (s) text = text.split(s).join('***');
      const how = code === null ? `was killed (${sig})` : `exited ${code}`;
      reject(new CairnError('INTERNAL', `${opts.what}: ${path.basename(cmd)} ${how}${text ? `: ${text}` : ''}`));
    });
  });
  done.catch(() => undefined);
  return { child, stdout: child.stdout!, stdin: child.stdin!, done };
}

/**
 * A tool's stdout as an async iterable that ends only once the tool exited well: a dump that fails
 * half way throws at the end of its output, so no snapshot or archive is made of a partial dump.
 * A consumer that stops early kills the tool.
 */
export async function* outputOf(run: ToolRun): AsyncGenerator<Buffer> {
  let finished = false;
  try {
    for await (const chunk of run.stdout) yield chunk as Buffer;
    await run.done;
    finished = true;
  } finally {
    if (!finished && run.child.exitCode === null) run.child.kill('SIGTERM');
  }
}

/** Feeds `input` into a tool's stdin and waits for it to exit well; a tool that quits early (a load error) ends the feeding. */
export async function feedTool(run: ToolRun, input: AsyncIterable<Uint8Array>): Promise<void> {
  run.stdout.resume();
  let exited = false;
  const exit = run.done.then(
    () => (exited = true),
    () => (exited = true),
  );
  try {
    for await (const chunk of input) {
      if (exited) break;
      if (!run.stdin.write(chunk)) await Promise.race([once(run.stdin, 'drain').catch(() => undefined), exit]);
    }
    run.stdin.end();
  } catch (err) {
    run.child.kill('SIGTERM');
    await exit;
    throw err;
  }
  await run.done;
}
