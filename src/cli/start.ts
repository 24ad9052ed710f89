/**
 * `npm start`: the backup service on embedded defaults with zero configuration. Creates a data
 * folder (./cairn-data, or CAIRN_DATA_DIR) holding a SQLite catalog, a local repository, a
 * generated repository password and an API token (both 0600 files), adds a plan `here` that backs
 * up the given paths (default: the current folder, without node_modules and the data folder)
 * every hour, runs it once now, and serves the API on 127.0.0.1. Ctrl-C stops it cleanly.
 */
import path from 'node:path';
import { Daemon } from '../service/daemon.js';

const dataDir = path.resolve(process.env.CAIRN_DATA_DIR ?? 'cairn-data');
const sources = process.argv.slice(2).length > 0 ? process.argv.slice(2) : [process.cwd()];
const plan = {
  name: 'here',
  sources: sources.map((p) => ({ path: path.resolve(p), excludes: ['node_modules', dataDir] })),
  schedule: '0 * * * *',
};

const daemon = await Daemon.start({ dataDir, defaultPlans: [plan] });
if ((await daemon.catalog.lastJob('here')) === null) await daemon.runPlan('here', 'startup');
process.stderr.write(
  [
    `cairn daemon on ${daemon.url} (API token in ${path.join(dataDir, 'api-token')})`,
    `plan "here" backs up ${sources.join(', ')} every hour into ${daemon.repository.location}`,
    `repository password: ${daemon.repository.passwordFile} (keep a copy: without it the backups cannot be read)`,
    `see it: node dist/cli/main.js plan ls --data-dir ${dataDir}`,
    `restore: CAIRN_PASSWORD_FILE=${daemon.repository.passwordFile} node dist/cli/main.js -r ${daemon.repository.location} restore latest --target DIR`,
    '',
  ].join('\n'),
);
let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) process.exit(130);
    stopping = true;
    void daemon.stop().then(() => process.exit(0));
  });
}
