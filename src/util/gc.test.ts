import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Young collections seen in a fresh node process while Key encrypts `mib` MiB in 1 MiB messages. */
function youngCollections(flags: string[], mib: number): number {
  const script = `
    import { PerformanceObserver, constants } from 'node:perf_hooks';
    const { Key } = await import(${JSON.stringify(path.join(ROOT, 'dist/crypto/crypto.js'))});
    let minor = 0;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) minor++;
    });
    obs.observe({ entryTypes: ['gc'] });
    const key = Key.random();
    const msg = Buffer.alloc(1024 * 1024, 7);
    await new Promise((r) => setTimeout(r, 50));
    const before = minor;
    for (let i = 0; i < ${mib}; i++) key.encrypt(msg);
    await new Promise((r) => setTimeout(r, 50));
    process.stdout.write(String(minor - before));
  `;
  // A young generation too large to fill here, so that only the pacing collects.
  const r = spawnSync(process.execPath, ['--max-semi-space-size=64', '--min-semi-space-size=64', ...flags, '--input-type=module', '-e', script], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  return Number(r.stdout);
}

describe('madeGarbage', () => {
  it("collects the young generation once per 4 MiB of the cipher's buffers, only where node exposes gc", () => {
    const paced = youngCollections(['--expose-gc'], 40);
    expect(paced).toBeGreaterThanOrEqual(10);
    expect(paced).toBeLessThanOrEqual(12);
    // Without it V8 collects on its own, by the native memory piled up: a few times in 40 MiB.
    expect(youngCollections([], 40)).toBeLessThanOrEqual(4);
  });
});
