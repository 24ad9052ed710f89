// Preloaded with --import: records every module URL the program resolves, and writes the list to
// the file named by CAIRN_TRACE_IMPORTS when the process exits (for the startup test).
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
import { writeFileSync } from 'node:fs';
import process from 'node:process';

const seen = new Set();
const { port1, port2 } = new MessageChannel();
port1.on('message', (url) => seen.add(url));
port1.unref();
register('./trace-imports-hooks.mjs', import.meta.url, { data: { port: port2 }, transferList: [port2] });
process.on('exit', () => writeFileSync(process.env.CAIRN_TRACE_IMPORTS, [...seen].join('\n')));
