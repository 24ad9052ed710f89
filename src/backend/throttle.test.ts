import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBackendConformance } from './conformance.js';
import { LocalBackend } from './local.js';
import { parseRateLimit, Throttle, ThrottledBackend, type Clock } from './throttle.js';

runBackendConformance('throttled local backend', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-throttle-'));
  const fast = { upload: new Throttle(1024 ** 3), download: new Throttle(1024 ** 3) };
  return { backend: new ThrottledBackend(new LocalBackend(path.join(dir, 'repo')), fast), cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

/** A clock that moves only when told; sleeping on it is recorded and returns at once. */
function fakeClock(): Clock & { slept: number[]; advance(ms: number): void } {
  let t = 0;
  const c = {
    slept: [] as number[],
    now: () => t,
    sleep: async (ms: number) => {
      c.slept.push(ms);
    },
    advance: (ms: number) => {
      t += ms;
    },
  };
  return c;
}

describe('throttle', () => {
  it('lets a second of bytes through at once, then holds each caller to the rate, and refills no more than a second', async () => {
    const clock = fakeClock();
    const t = new Throttle(1000, clock);
    await t.take(1000);
    expect(clock.slept).toEqual([]);
    await t.take(500);
    expect(clock.slept).toEqual([500]);
    // Without time passing, each caller waits for the bytes reserved before it too.
    await Promise.all([t.take(1000), t.take(1000)]);
    expect(clock.slept).toEqual([500, 1500, 2500]);
    clock.advance(60_000);
    await t.take(1000);
    await t.take(1);
    expect(clock.slept.at(-1)).toBeCloseTo(1, 5);
  });

  it('takes restic\'s KiB/s and refuses anything else', () => {
    expect(parseRateLimit('100', '--limit-upload')).toBe(102_400);
    for (const bad of ['0', '-5', '1.5', '10k', '']) expect(() => parseRateLimit(bad, '--limit-upload'), bad).toThrow(/invalid --limit-upload/);
  });

  it('counts saves before they go and loads once they arrive, whole', async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cairn-throttle-'));
    try {
      const up = fakeClock();
      const down = fakeClock();
      const b = new ThrottledBackend(new LocalBackend(path.join(dir, 'repo')), { upload: new Throttle(100, up), download: new Throttle(100, down) });
      await b.create();
      const name = 'a'.repeat(64);
      await b.save({ type: 'snapshot', name }, Buffer.alloc(300));
      expect(up.slept).toEqual([2000]);
      expect(await b.load({ type: 'snapshot', name }, 0, 250)).toHaveLength(250);
      expect(down.slept).toEqual([1500]);
      const staged = path.join(dir, 'repo', 'data', '.staged');
      await fs.writeFile(staged, Buffer.alloc(100));
      await b.saveFile!({ type: 'data', name: 'b'.repeat(64) }, staged);
      expect(up.slept).toEqual([2000, 3000]);
      // A reader of the local file itself would pass the download limit by: none is offered.
      expect(b.localPath).toBeUndefined();
      const uploadsOnly = new ThrottledBackend(new LocalBackend(path.join(dir, 'repo')), { upload: new Throttle(100, up) });
      await uploadsOnly.save({ type: 'data', name }, Buffer.alloc(10));
      expect(await uploadsOnly.localPath?.({ type: 'data', name })).toBe(path.join(dir, 'repo', 'data', 'aa', name));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('ends a wait at once when the command is interrupted', async () => {
    const controller = new AbortController();
    const t = new Throttle(1, undefined, controller.signal);
    await t.take(1);
    const started = Date.now();
    const waiting = t.take(3600);
    setTimeout(() => controller.abort(), 50);
    await expect(waiting).rejects.toMatchObject({ code: 'INTERRUPTED' });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
