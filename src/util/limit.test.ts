import { describe, expect, it } from 'vitest';
import { Yielder, mapLimit } from './limit.js';

function busy(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

describe('Yielder', () => {
  it('asks for nothing until the thread has been held for its time, then gives every caller the same pause', async () => {
    const y = new Yielder(5);
    expect(y.maybe()).toBeUndefined();
    busy(6);
    const pause = y.maybe();
    expect(pause).toBeInstanceOf(Promise);
    expect(y.maybe()).toBe(pause);
    await pause;
    // The pause ended: the clock starts again.
    expect(y.maybe()).toBeUndefined();
  });

  /** Four chains of 50 steps of 0.2 ms each, with `pause` after each step; at which step a timer set first fired (-1: after the end). */
  async function timerStep(pause: () => Promise<void> | undefined): Promise<number> {
    let firedAt = -1;
    let steps = 0;
    setTimeout(() => (firedAt = steps), 0);
    const chain = async (): Promise<void> => {
      for (let i = 0; i < 50; i++) {
        busy(0.2);
        steps++;
        await pause();
      }
    };
    await Promise.all([chain(), chain(), chain(), chain()]);
    expect(steps).toBe(200);
    return firedAt;
  }

  it('lets a timer run in the middle of chains of promises that settle at once', async () => {
    const y = new Yielder(2);
    const at = await timerStep(() => y.maybe());
    expect(at).toBeGreaterThanOrEqual(0);
    expect(at).toBeLessThan(200);
  });

  it('without it, the same chains hold the thread to the end', async () => {
    expect(await timerStep(() => Promise.resolve())).toBe(-1);
  });
});

describe('mapLimit', () => {
  it('keeps the order of its input with at most n calls in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x, i) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, x));
      inFlight--;
      return `${i}:${x}`;
    });
    expect(out).toEqual(['0:5', '1:1', '2:4', '3:2', '4:3']);
    expect(most).toBe(2);
  });

  it('starts no call after one has failed, lets those in flight finish, and fails with the first error', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const run = mapLimit([0, 1, 2, 3, 4, 5, 6, 7], 3, async (x) => {
      started.push(x);
      await new Promise((r) => setTimeout(r, x === 1 ? 5 : 20));
      if (x === 1) throw new Error('item 1 failed');
      finished.push(x);
      return x;
    });
    await expect(run).rejects.toThrow('item 1 failed');
    // 0 and 2 were in flight with 1 and finish; nothing started after 1 failed.
    await new Promise((r) => setTimeout(r, 50));
    expect(started).toEqual([0, 1, 2]);
    expect(finished.sort()).toEqual([0, 2]);
  });
});
