import { spawn } from 'node:child_process';
import readline from 'node:readline';

/** A server running in a child process. */
export interface ChildServer {
  /** The match of the `ready` pattern in the line the server printed when it listened. */
  match: RegExpExecArray;
  /** Stops the server (SIGTERM) and waits until it has exited. */
  stop(): Promise<void>;
}

/**
 * Starts a server in a child process and waits until it prints a line matching `ready` on
 * `stream`, such as the address it listens on (so a free port can be asked for with port 0).
 * Rejects with what it printed when it exits first.
 */
export async function startChildServer(cmd: string, args: string[], stream: 'stdout' | 'stderr', ready: RegExp, env: NodeJS.ProcessEnv = {}): Promise<ChildServer> {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', stream === 'stdout' ? 'pipe' : 'ignore', stream === 'stderr' ? 'pipe' : 'ignore'] });
  const lines: string[] = [];
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    readline.createInterface({ input: child[stream]! }).on('line', (line) => {
      lines.push(line);
      const m = ready.exec(line);
      if (m) resolve(m);
    });
    child.once('exit', (code) => reject(new Error(`${cmd} ${args.join(' ')} exited ${code} before it was ready:\n${lines.join('\n')}`)));
    child.once('error', reject);
  });
  return {
    match,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
