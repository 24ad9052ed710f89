import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../errors.js';
import type { Backend } from './backend.js';
import { runBackendConformance } from './conformance.js';
import { FaultyBackend } from './faulty.js';
import { LocalBackend } from './local.js';
import { UnreachableError } from './remote.js';
import { RetryBackend } from './retry.js';

async function tempRoot(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'cairn-retry-'));
}

runBackendConformance('retry over a backend that fails 20% of calls', async () => {
  const dir = await tempRoot();
  const faulty = new FaultyBackend(new LocalBackend(path.join(dir, 'repo')), { failRate: 0.2, shortReadRate: 0.1, seed: 7 });
  return { backend: new RetryBackend(faulty, { baseDelayMs: 1, maxDelayMs: 5 }), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

describe('retry', () => {
  const counting = (failures: number, error: () => Error): Backend & { calls: number } => {
    const b = {
      calls: 0,
      location: 'test',
      create: async () => undefined,
      save: async () => undefined,
      load: async () => {
        b.calls++;
        if (b.calls <= failures) throw error();
        return Buffer.from('ok');
      },
      stat: async () => ({ name: '', size: 0 }),
      list: async function* () {},
      remove: async () => undefined,
      exists: async () => true,
      close: async () => undefined,
    };
    return b;
  };

  it('retries transient failures and reports each retry', async () => {
    const inner = counting(3, () => new CairnError('BACKEND_UNAVAILABLE', 'connection reset'));
    const seen: number[] = [];
    const b = new RetryBackend(inner, { baseDelayMs: 1, onRetry: (_w, n) => seen.push(n) });
    expect((await b.load({ type: 'config', name: '' })).toString()).toBe('ok');
    expect(inner.calls).toBe(4);
    expect(seen).toEqual([1, 2, 3]);
  });

  it('does not retry permanent failures, and gives up after its retries', async () => {
    const missing = counting(5, () => new CairnError('NOT_FOUND', 'no such file'));
    await expect(new RetryBackend(missing, { baseDelayMs: 1 }).load({ type: 'config', name: '' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(missing.calls).toBe(1);
    const down = counting(100, () => new CairnError('BACKEND_UNAVAILABLE', 'down'));
    await expect(new RetryBackend(down, { baseDelayMs: 1, retries: 3 }).load({ type: 'config', name: '' })).rejects.toMatchObject({ code: 'BACKEND_UNAVAILABLE' });
    expect(down.calls).toBe(4);
  });

  it('does not retry a file too short for the range, a missing repository or a lock', async () => {
    for (const code of ['INTEGRITY', 'REPO_NOT_FOUND', 'LOCKED'] as const) {
      const inner = counting(5, () => new CairnError(code, code));
      await expect(new RetryBackend(inner, { baseDelayMs: 1 }).load({ type: 'config', name: '' })).rejects.toMatchObject({ code });
      expect(inner.calls, code).toBe(1);
    }
  });

  it('gives up soon on a remote it has never reached, and rides out an outage of one that has answered', async () => {
    const never = counting(100, () => new UnreachableError('connection refused'));
    await expect(new RetryBackend(never, { baseDelayMs: 1, unreachableRetries: 2 }).load({ type: 'config', name: '' })).rejects.toBeInstanceOf(UnreachableError);
    expect(never.calls).toBe(3);

    let down = false;
    let calls = 0;
    const flapping = {
      ...counting(0, () => new Error()),
      load: async () => {
        calls++;
        if (down && calls < 10) throw new UnreachableError('connection refused');
        return Buffer.from('ok');
      },
    };
    const b = new RetryBackend(flapping, { baseDelayMs: 1, maxDelayMs: 2, unreachableRetries: 2 });
    await b.load({ type: 'config', name: '' });
    down = true;
    expect((await b.load({ type: 'config', name: '' })).toString()).toBe('ok');
    expect(calls).toBe(10);
  });

  it('stops retrying when cancelled', async () => {
    const down = counting(100, () => new CairnError('BACKEND_UNAVAILABLE', 'down'));
    const ac = new AbortController();
    const p = new RetryBackend(down, { baseDelayMs: 50 }).load({ type: 'config', name: '' }, 0, undefined, ac.signal);
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toMatchObject({ code: 'INTERRUPTED' });
    expect(down.calls).toBeLessThan(5);
  });

  it('keeps at most `concurrency` calls in flight', async () => {
    let inFlight = 0;
    let peak = 0;
    const slow = { ...counting(0, () => new Error()), load: async () => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return Buffer.from('x');
    } };
    const b = new RetryBackend(slow, { concurrency: 3 });
    await Promise.all(Array.from({ length: 20 }, () => b.load({ type: 'config', name: '' })));
    expect(peak).toBe(3);
  });
});
