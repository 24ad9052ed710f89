/**
 * A plan's side effects around a run: shell commands before and after (each with a timeout) and a
 * webhook on failure (and, when asked, on success).
 */
import { spawn } from 'node:child_process';
import { CairnError } from '../errors.js';
import type { Plan } from './config.js';

/** Runs one hook command through the shell; fails with its exit code and the end of its output. */
export function runHook(command: string, env: Record<string, string>, timeoutMs: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const keep = (d: Buffer) => (output = (output + d.toString('utf8')).slice(-2000));
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    let why: string | null = null;
    const timer = setTimeout(() => {
      why = `timed out after ${timeoutMs / 1000} s`;
      kill();
    }, timeoutMs);
    const onAbort = () => {
      why = 'interrupted';
      kill();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new CairnError('BAD_INPUT', `hook ${JSON.stringify(command)} could not start: ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (why === 'interrupted') reject(new CairnError('INTERRUPTED', `hook ${JSON.stringify(command)} interrupted`));
      else if (why) reject(new CairnError('BAD_INPUT', `hook ${JSON.stringify(command)} ${why}`));
      else if (code !== 0) reject(new CairnError('BAD_INPUT', `hook ${JSON.stringify(command)} exited ${code}${output.trim() ? `: ${output.trim().slice(-500)}` : ''}`));
      else resolve();
    });
  });
}

export async function runHooks(plan: Plan, when: 'before' | 'after', env: Record<string, string>, signal: AbortSignal): Promise<void> {
  const hooks = plan.hooks;
  const list = hooks?.[when] ?? [];
  for (const cmd of list) await runHook(cmd, { ...env, CAIRN_HOOK: when }, (hooks?.timeoutSeconds ?? 300) * 1000, signal);
}

/** Posts the job's outcome to the plan's webhook; a failing webhook is reported, never fatal. */
export async function notify(plan: Plan, body: { plan: string; job: string; kind: string; state: string; error: string | null; files: number; bytes: number }): Promise<string | null> {
  const n = plan.notify;
  if (!n) return null;
  if (body.state === 'done' ? !n.onSuccess : !n.onFailure) return null;
  try {
    const res = await fetch(n.webhook, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ event: `job.${body.state}`, ...body }), signal: AbortSignal.timeout(10_000) });
    await res.body?.cancel();
    return res.ok ? null : `webhook answered ${res.status}`;
  } catch (err) {
    return `webhook failed: ${(err as Error).message}`;
  }
}
