/**
 * `npm start` (dist/cli/start.js): the daemon on embedded defaults backs up the folder it is
 * started in, with a generated 0600 password file, and stops cleanly on SIGTERM.
 */
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HAVE_RESTIC, ROOT, ok, runCommand, tempDir } from '../support/tools.js';
import { TEST_ENV, waitFor } from '../support/daemon.js';

describe.runIf(HAVE_RESTIC)('npm start', () => {
  it('runs the daemon with a plan for the current folder', async () => {
    const cwd = await tempDir();
    fs.writeFileSync(path.join(cwd, 'notes.txt'), 'remember\n');
    fs.mkdirSync(path.join(cwd, 'node_modules'));
    fs.writeFileSync(path.join(cwd, 'node_modules', 'dep.js'), 'skip me');
    const dataDir = path.join(cwd, 'cairn-data');
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/cli/start.js')], { cwd, env: { ...process.env, ...TEST_ENV, CAIRN_LISTEN: '127.0.0.1:0' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const url = await waitFor('the daemon', () => fs.existsSync(path.join(dataDir, 'daemon.json')) && (JSON.parse(fs.readFileSync(path.join(dataDir, 'daemon.json'), 'utf8')) as { url: string }).url, 30_000);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const token = fs.readFileSync(path.join(dataDir, 'api-token'), 'utf8').trim();
      const job = await waitFor('the first backup', async () => {
        const r = (await (await fetch(`${url}/api/v1/jobs?plan=here`, { headers: { authorization: `Bearer ${token}` } })).json()) as { jobs: { state: string }[] };
        return r.jobs.find((j) => j.state === 'done');
      }, 30_000);
      expect(job).toBeTruthy();
      for (const f of ['repo-password', 'api-token']) expect(fs.statSync(path.join(dataDir, f)).mode & 0o777).toBe(0o600);
      expect(stderr).toMatch(/repository password: .*repo-password/);
      const pw = fs.readFileSync(path.join(dataDir, 'repo-password'), 'utf8').trim();
      expect(stderr).not.toContain(pw);
      expect(stderr).not.toContain(token);
      // restic's cache in a folder of its own: not in the folder the daemon backs up, nor in /tmp itself.
      const env = { RESTIC_PASSWORD_FILE: path.join(dataDir, 'repo-password'), RESTIC_CACHE_DIR: await tempDir('cairn-restic-cache-') };
      const files = ok(await runCommand('restic', ['-r', path.join(dataDir, 'repo'), 'ls', 'latest'], { env }), 'restic ls').out;
      expect(files).toContain(path.join(cwd, 'notes.txt'));
      expect(files).not.toContain('node_modules');
      expect(files).not.toContain('cairn-data');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});
