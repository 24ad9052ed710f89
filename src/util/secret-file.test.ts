import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/support/tools.js';
import { passwordFileCandidates, readPasswordCommand, readPasswordFile, splitCommandLine } from './secret-file.js';

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

describe('password commands', () => {
  it('split into words as a shell would, without a shell', () => {
    expect(splitCommandLine('pass show backup/key', 'c')).toEqual(['pass', 'show', 'backup/key']);
    expect(splitCommandLine(`  cat   "/a dir/pw file"  'it''s'  a\\ b "q\\"uote" '$HOME' `, 'c')).toEqual(['cat', '/a dir/pw file', 'its', 'a b', 'q"uote', '$HOME']);
    expect(splitCommandLine(`echo ""`, 'c')).toEqual(['echo', '']);
    expect(() => splitCommandLine(`echo "open`, 'c')).toThrow(/c: unbalanced " quote/);
    expect(() => splitCommandLine('   ', 'c')).toThrow(/c is empty/);
  });

  it('give the output trimmed; a failing, missing or silent command is refused without showing its output', async () => {
    expect(readPasswordCommand(`printf '  from a command \\n'`)).toBe('from a command');
    expect(() => readPasswordCommand(`sh -c 'echo leaked; exit 3'`)).toThrow(/--password-command "sh" failed \(exit code 3\)$/);
    expect(() => readPasswordCommand('/nonexistent/tool')).toThrow(/could not run: ENOENT/);
    expect(() => readPasswordCommand('true')).toThrow(/printed no password/);
  });
});
