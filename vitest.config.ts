import os from 'node:os';
import path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    setupFiles: ['test/support/cleanup.ts', 'test/support/bytes.ts'],
    // Commands the tests start keep their index caches out of the home folder (TestRepo has its own).
    env: { CAIRN_CACHE_DIR: path.join(os.tmpdir(), 'cairn-test-cache') },
    // Most tests wait on child processes, servers and disks, so two files at a time pay even on two
    // cores (vitest's default there is one): the suite took 425 s instead of 638 s.
    maxWorkers: Math.max(2, os.availableParallelism() - 1),
  },
});
