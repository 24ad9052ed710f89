import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CairnError } from '../errors.js';
import type { Backend } from './backend.js';
import { runBackendConformance } from './conformance.js';
import { FaultyBackend } from './faulty.js';
import { LocalBackend } from './local.js';
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
