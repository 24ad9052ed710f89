import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { CLI, HAVE_RESTIC, cairn, makeRepoPaths, ok, restic, runCommand, tempDir } from '../support/tools.js';
import { seededBytes, textBytes } from '../support/trees.js';

describe.runIf(HAVE_RESTIC)('dump of a folder', () => {
  it('writes the tar and the zip restic writes: same entries, modes, owners, times and contents', async () => {
    const repo = await makeRepoPaths();
    const src = await tempDir();
    const files: Record<string, Buffer | string> = {
      'a.txt': 'alpha\n',
      'empty': '',
      'big.bin': seededBytes(71, 1_200_000),
      'with space/ünïcode.txt': textBytes(72, 50_000),
      'deep/er/still/x': 'x',
    };
    for (const [f, content] of Object.entries(files)) {
      await fs.mkdir(path.dirname(path.join(src, f)), { recursive: true });
      await fs.writeFile(path.join(src, f), content);
    }
    await fs.mkdir(path.join(src, 'empty-dir'));
    await fs.symlink('a.txt', path.join(src, 'link'));
    await fs.chmod(path.join(src, 'a.txt'), 0o640);
    ok(await cairn(repo, ['init']), 'init');
    ok(await cairn(repo, ['backup', src]), 'backup');
    const sub = `${src}/with space`;
    for (const [what, at] of [['the whole snapshot', '/'], ['the source folder', src], ['a folder inside', sub]] as const) {
      const ours = ok(await cairn(repo, ['dump', 'latest', at]), `cairn dump ${what}`).stdout;
      const theirs = ok(await restic(repo, ['dump', 'latest', at]), `restic dump ${what}`).stdout;
      const list = async (tarBytes: Buffer) => {
        const file = path.join(await tempDir(), 'x.tar');
        await fs.writeFile(file, tarBytes);
        return ok(await runCommand('tar', ['--numeric-owner', '--full-time', '-tvf', file]), 'tar t').out;
      };
      expect(await list(ours), what).toBe(await list(theirs));
      // Unpacked, the contents are the files'.
      const out = await tempDir();
      const file = path.join(out, 'x.tar');
      await fs.writeFile(file, ours);
      ok(await runCommand('tar', ['-xf', file, '-C', out]), 'tar x');
      expect(await fs.readFile(path.join(out, sub.slice(1), 'ünïcode.txt'))).toEqual(files['with space/ünïcode.txt']);
    }
    const zip = ok(await cairn(repo, ['dump', '--archive', 'zip', 'latest', src]), 'zip').stdout;
    const theirsZip = ok(await restic(repo, ['dump', '--archive', 'zip', 'latest', src]), 'restic zip').stdout;
    const zipList = async (bytes: Buffer) => {
      const file = path.join(await tempDir(), 'x.zip');
      await fs.writeFile(file, bytes);
      // Names, modes, sizes and times (not the zip versions or compression methods).
      return ok(await runCommand('unzip', ['-Z', '-T', file]), 'unzip -Z').out.trim().split('\n').slice(2, -1).map((l) => { const f = l.split(/\s+/); return [f[0], f[3], f[6], f.slice(7).join(' ')].join(' '); });
    };
    expect(await zipList(zip)).toEqual(await zipList(theirsZip));
    const unzipped = await tempDir();
    const zipFile = path.join(unzipped, 'x.zip');
    await fs.writeFile(zipFile, zip);
    ok(await runCommand('unzip', ['-q', zipFile, '-d', unzipped]), 'unzip');
    expect(await fs.readFile(path.join(unzipped, src.slice(1), 'big.bin'))).toEqual(files['big.bin']);
    expect(await fs.readlink(path.join(unzipped, src.slice(1), 'link'))).toBe('a.txt');
    // A file is still its content; a bad format is refused.
    expect(ok(await cairn(repo, ['dump', 'latest', `${src}/a.txt`]), 'file').out).toBe('alpha\n');
    const bad = await cairn(repo, ['dump', '--archive', 'rar', 'latest', src]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('invalid --archive "rar"');
    // A reader that goes away after the first bytes (`| head -c 100`): a clear error, not a crash.
    for (const at of [src, `${src}/big.bin`]) {
      const child = spawn(process.execPath, [CLI, 'dump', 'latest', at], { env: { ...process.env, ...repo.env } });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.stdout.once('data', () => child.stdout.destroy());
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      expect(code, at).toBe(1);
      expect(stderr, at).toContain('standard output was closed before the dump was complete');
      expect(stderr, at).not.toContain('unexpected error');
    }
  });
});
