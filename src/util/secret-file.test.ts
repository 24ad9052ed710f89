import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/tools.js';
import { passwordFileCandidates, readPasswordFile } from './secret-file.js';

describe('password files', () => {
  it("read as restic reads them: the whole file, white space at both ends trimmed as Go's strings.TrimSpace does", async () => {
    const dir = await tempDir();
    const cases: [string, string, string[]][] = [
      ['secret\n', 'secret', ['secret']],
      ['secret', 'secret', ['secret']],
      ['secret\r\n', 'secret', ['secret']],
      ['  spaced secret \t\n', 'spaced secret', ['spaced secret', '  spaced secret \t']],
      ['first\nsecond\n', 'first\nsecond', ['first\nsecond', 'first']],
      ['\u00a0nbsp\u0085\n', 'nbsp', ['nbsp', '\u00a0nbsp\u0085']],
      // Go's TrimSpace leaves a byte order mark alone (restic 0.14 reads files as they are).
      ['\ufeffbom\n', '\ufeffbom', ['\ufeffbom']],
      ['inner  spaces stay\n', 'inner  spaces stay', ['inner  spaces stay']],
    ];
    for (const [i, [content, restic, candidates]] of cases.entries()) {
      const file = path.join(dir, `pw${i}`);
      await fs.writeFile(file, content);
      expect(readPasswordFile(file), JSON.stringify(content)).toBe(restic);
      expect(passwordFileCandidates(file), JSON.stringify(content)).toEqual(candidates);
    }
    expect(() => readPasswordFile(path.join(dir, 'missing'))).toThrow(/cannot read password file .*missing: ENOENT/);
  });
});
