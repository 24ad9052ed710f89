import { describe, expect, it } from 'vitest';
import { BoundedQueue, runStage } from './queue.js';

describe('bounded queue and stages', () => {
  it('makes a producer wait while the queue is full and hands items out in order', async () => {
    const q = new BoundedQueue<number>(2);
    await q.push(1);
    await q.push(2);
    let third = false;
    const p = q.push(3).then(() => (third = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(third).toBe(false);
    expect(await q.shift()).toBe(1);
    await p;
    q.close();
    expect([await q.shift(), await q.shift(), await q.shift()]).toEqual([2, 3, undefined]);
  });

  it('runs a stage with that many workers at once, drops failed items and closes its output', async () => {
    const input = new BoundedQueue<number>(10);
    const output = new BoundedQueue<number>(10);
    for (let i = 1; i <= 6; i++) await input.push(i);
    input.close();
    let active = 0;
    let most = 0;
    await runStage(input, output, 3, async (n) => {
      active++;
      most = Math.max(most, active);
      await new Promise((r) => setTimeout(r, 5));
      active--;
      return n % 2 === 0 ? null : n * 10;
    });
    const got: number[] = [];
    for (let x = await output.shift(); x !== undefined; x = await output.shift()) got.push(x);
    expect(got.sort()).toEqual([10, 30, 50]);
    expect(most).toBe(3);
  });
});
