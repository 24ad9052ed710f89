import { describe, expect, it } from 'vitest';
import { RepoGate } from './repo-gate.js';

const tick = () => new Promise((r) => setImmediate(r));

describe('repository gate', () => {
  it('lets shared holders in together, an exclusive one alone, first come first served', async () => {
    const g = new RepoGate();
    const order: string[] = [];
    const a = await g.shared('/r');
    const b = await g.shared('/r');
    expect(g.state('/r')).toEqual({ shared: 2, exclusive: false, waiting: 0 });
    const x = g.exclusive('/r').then((leave) => (order.push('x'), leave));
    // A shared request after the waiting exclusive one waits behind it.
    const c = g.shared('/r').then((leave) => (order.push('c'), leave));
    await tick();
    expect(order).toEqual([]);
    expect(g.state('/r')).toEqual({ shared: 2, exclusive: false, waiting: 2 });
    a();
    a(); // twice is once
    await tick();
    expect(order).toEqual([]);
    b();
    const leaveX = await x;
    await tick();
    expect(order).toEqual(['x']);
    expect(g.state('/r')).toEqual({ shared: 0, exclusive: true, waiting: 1 });
    leaveX();
    (await c)();
    expect(order).toEqual(['x', 'c']);
    expect(g.state('/r')).toEqual({ shared: 0, exclusive: false, waiting: 0 });
    // Other repositories are not held up.
    const y = await g.exclusive('/r');
    const other = await g.shared('/other');
    other();
    y();
  });

  it('stops waiting when the job is cancelled, and the next one goes in', async () => {
    const g = new RepoGate();
    const held = await g.exclusive('/r');
    const ac = new AbortController();
    const waiting = g.shared('/r', ac.signal);
    const after = g.exclusive('/r');
    ac.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'INTERRUPTED' });
    expect(g.state('/r').waiting).toBe(1);
    held();
    (await after)();
    expect(g.state('/r')).toEqual({ shared: 0, exclusive: false, waiting: 0 });
    await expect(g.shared('/r', ac.signal)).rejects.toMatchObject({ code: 'INTERRUPTED' });
  });
});
