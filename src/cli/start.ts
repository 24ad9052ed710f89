/**
 * `npm start`: Cairn on embedded defaults with zero configuration. Creates a data folder
 * (./cairn-data, or CAIRN_DATA_DIR) holding a local repository and a generated password in a
 * 0600 file, backs up the given paths (default: the current folder, without node_modules and
 * the data folder itself) and lists the snapshots. Run it again for an incremental backup.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = path.join(path.dirname(fileURLToPath(import.meta.url)), 'main.js');
const dataDir = path.resolve(process.env.CAIRN_DATA_DIR ?? 'cairn-data');
const repo = path.join(dataDir, 'repo');
const passwordFile = path.join(dataDir, 'repo-password');
const sources = process.argv.slice(2).length > 0 ? process.argv.slice(2) : [process.cwd()];

fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
if (!fs.existsSync(passwordFile)) {
  fs.writeFileSync(passwordFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  process.stderr.write(`generated a repository password in ${passwordFile} (keep a copy: without it the backups cannot be read)\n`);
}
const env = { ...process.env, CAIRN_REPOSITORY: repo, CAIRN_PASSWORD_FILE: passwordFile };
const cairn = (args: string[]): number => spawnSync(process.execPath, [cli, ...args], { env, stdio: 'inherit' }).status ?? 1;

if (!fs.existsSync(path.join(repo, 'config')) && cairn(['init']) !== 0) process.exit(1);
const backup = cairn(['backup', '--exclude', 'node_modules', '--exclude', dataDir, ...sources]);
cairn(['snapshots']);
process.stderr.write(`repository: ${repo}\nrestore with: CAIRN_PASSWORD_FILE=${passwordFile} node ${path.relative(process.cwd(), cli)} -r ${repo} restore latest --target DIR\n`);
process.exit(backup);
