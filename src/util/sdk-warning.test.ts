import { expect, it } from 'vitest';
import { filterSdkNodeWarning } from './sdk-warning.js';

it('hides only the AWS SDK Node version warning', async () => {
  const seen: string[] = [];
  const listener = (w: Error) => seen.push(w.message);
  process.on('warning', listener);
  filterSdkNodeWarning();
  filterSdkNodeWarning();
  process.emitWarning('NodeVersionSupportWarning: The AWS SDK for JavaScript (v3) versions published after …');
  process.emitWarning('something else', 'CairnTestWarning');
  await new Promise((resolve) => setImmediate(resolve));
  process.off('warning', listener);
  expect(seen).toEqual(['something else']);
});
