import { describe, expect, it } from 'vitest';
import v8 from 'node:v8';
import { once } from 'node:events';
import { startWorker, WORKER_SEMI_SPACE_MB } from './worker.js';

/** Fills the young generation with objects that survive a scavenge or two, then reports its size. */
const ALLOCATOR = `
const { parentPort } = require('node:worker_threads');
const v8 = require('node:v8');
let keep = [];
for (let i = 0; i < 2e6; i++) { keep.push({ a: i, b: [i] }); if (keep.length > 50000) keep = []; }
parentPort.postMessage(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
`;

describe('startWorker', () => {
  it('gives workers a young generation of WORKER_SEMI_SPACE_MB and leaves the main thread as it started', async () => {
    const mainBefore = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;
    const w = startWorker(ALLOCATOR, { eval: true });
    const [size] = (await once(w, 'message')) as [number];
    await w.terminate();
    // New space is two semi-spaces; without the flag V8 lets a busy worker's grow to 16 MiB each.
    expect(size).toBeGreaterThan(0);
    expect(size).toBeLessThanOrEqual(2 * WORKER_SEMI_SPACE_MB * 1024 * 1024);
    // The main isolate keeps its own limit: it can still grow past the workers' size.
    let keep: object[] = [];
    for (let i = 0; i < 4e6; i++) {
      keep.push({ a: i, b: [i] });
      if (keep.length > 100_000) keep = [];
    }
    const mainAfter = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;
    expect(Math.max(mainBefore, mainAfter)).toBeGreaterThan(2 * WORKER_SEMI_SPACE_MB * 1024 * 1024);
  });
});
