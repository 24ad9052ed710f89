/**
 * Runs in every test file (vitest setupFiles): the folders made with tempDir go when the file's
 * tests are done, after the file's own afterAll hooks have stopped what was using them.
 */
import { afterAll } from 'vitest';
import { removeTempDirs } from './tools.js';

afterAll(removeTempDirs);
