import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { DEFAULT_MAX_SIZE } from '../../receiver/names.js';
import { parseSize } from '../../util/size.js';
import { readSecretFile } from '../../util/secret-file.js';
import type { Context } from '../context.js';
import type { Run } from '../program.js';

interface ReceiverFlags {
  port: string;
  host: string;
  storage: string;
  catalog?: string;
  catalogFile?: string;
  tokenFile?: string;
  maxSize?: string;
  keep?: string;
  logLevel: string;
}

/** The first line of a file holding a secret (a token, a catalog URL with its password). */
function positiveInteger(s: string, flag: string, min: number): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(n) || n < min) throw new CairnError('BAD_INPUT', `invalid ${flag} ${JSON.stringify(s)}: use a whole number from ${min}`);
  return n;
}

/** Where the catalog is: --catalog-file, then --catalog, then CAIRN_CATALOG_URL; SQLite in the storage folder otherwise. */
async function catalogUrl(flags: ReceiverFlags): Promise<string | undefined> {
  if (flags.catalogFile !== undefined && flags.catalog !== undefined) throw new CairnError('BAD_INPUT', 'give either --catalog or --catalog-file, not both');
  if (flags.catalogFile !== undefined) return readSecretFile(flags.catalogFile, 'catalog URL');
  return flags.catalog ?? (process.env.CAIRN_CATALOG_URL || undefined);
}

async function runReceiver(ctx: Context, flags: ReceiverFlags): Promise<void> {
  // Loaded here, not at the top: every other command starts faster without the web stack.
  const { pino } = await import('pino');
  const { startReceiver } = await import('../../receiver/server.js');
  const logger = pino({ level: flags.logLevel, base: { service: 'cairn-receiver' }, redact: ['req.headers.authorization'] }, pino.destination(2));
  const tokenFile = flags.tokenFile ?? (process.env.CAIRN_RECEIVER_TOKEN_FILE || undefined);
  const receiver = await startReceiver({
    storage: flags.storage,
    catalog: await catalogUrl(flags),
    token: tokenFile === undefined ? undefined : await readSecretFile(tokenFile, 'token'),
    maxSize: flags.maxSize === undefined ? DEFAULT_MAX_SIZE : parseSize(flags.maxSize, '--max-size'),
    keep: flags.keep === undefined ? undefined : positiveInteger(flags.keep, '--keep', 1),
    port: positiveInteger(flags.port, '--port', 0),
    host: flags.host,
    logger,
  });
  const about = { url: receiver.url, storage: receiver.store.storage, catalog: receiver.store.catalogUrl };
  logger.info(about, 'receiver listening');
  if (ctx.opts.json) ctx.json({ message_type: 'receiver_listening', ...about });
  else ctx.print(`cairn receiver listening on ${about.url}, storing archives in ${about.storage}, catalog ${about.catalog}`);

  await new Promise<void>((resolve) => {
    if (ctx.signal.aborted) resolve();
    else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  logger.info('shutting down: finishing the requests in flight (signal again to stop at once)');
  await receiver.close();
  logger.info('receiver stopped');
}

export function registerReceiver(program: Command, run: Run): void {
  program
    .command('receiver')
    .description('run the dump receiver: an HTTP service that stores uploaded database dump archives')
    .requiredOption('--storage <dir>', 'folder the archives are stored in (created if missing)')
    .option('--port <port>', 'TCP port to listen on (0 picks a free one)', '8090')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--catalog <url>', 'history database: sqlite:PATH, mysql://user@host/db or postgres://… (env CAIRN_CATALOG_URL; default sqlite in the storage folder)')
    .option('--catalog-file <file>', 'read the catalog URL from a file, so its password stays out of argv')
    .option('--token-file <file>', 'require "Authorization: Bearer <token>" with the token in this file (env CAIRN_RECEIVER_TOKEN_FILE)')
    .option('--max-size <size>', `largest archive accepted, e.g. 500M or 2G (default ${DEFAULT_MAX_SIZE / 1024 ** 3}G)`)
    .option('--keep <n>', 'keep only the newest n archives of each database (default: keep all)')
    .option('--log-level <level>', 'log level: fatal, error, warn, info, debug or trace', 'info')
    .action((flags: ReceiverFlags) => run((ctx) => runReceiver(ctx, flags)));
}
