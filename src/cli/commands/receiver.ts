import fs from 'node:fs/promises';
import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { DEFAULT_MAX_SIZE, startReceiver } from '../../receiver/server.js';
import { requireSize } from '../../util/size.js';
import type { Run } from '../main.js';

interface ReceiverFlags {
  port: string;
  host: string;
  storage: string;
  catalog?: string;
  tokenFile?: string;
  maxSize?: string;
  keep?: string;
  log: boolean;
}

async function readSecretFile(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot read ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const value = text.split(/\r?\n/)[0].trim();
  if (value === '') throw new CairnError('BAD_INPUT', `${what} file ${file} is empty`);
  return value;
}

export function registerReceiver(program: Command, run: Run): void {
  program
    .command('receiver')
    .description('serve the dump receiver: accept uploaded database archives, list their history, serve downloads')
    .requiredOption('--storage <dir>', 'folder that keeps the archives')
    .option('--port <port>', 'TCP port (0 picks a free one)', '8090')
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--catalog <url>', 'history database: sqlite:PATH (default <storage>/.cairn-receiver.db), mysql://… or postgres://… (env CAIRN_CATALOG_URL, or a URL in --catalog-file)')
    .option('--catalog-file <file>', 'read the catalog URL (with its password) from a file')
    .option('--token-file <file>', 'require Authorization: Bearer <token>, the token read from this file')
    .option('--max-size <size>', `largest archive accepted (default ${DEFAULT_MAX_SIZE / 1024 ** 3}G)`)
    .option('--keep <n>', 'keep only the newest N archives of each database')
    .option('--no-log', 'no request log on stderr')
    .action((o: ReceiverFlags & { catalogFile?: string }) =>
      run(async (ctx) => {
        const port = Number(o.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CairnError('BAD_INPUT', `invalid --port ${JSON.stringify(o.port)}`);
        const keep = o.keep === undefined ? undefined : Number(o.keep);
        if (keep !== undefined && (!Number.isInteger(keep) || keep < 1)) throw new CairnError('BAD_INPUT', `invalid --keep ${JSON.stringify(o.keep)}: a whole number of at least 1`);
        const catalog = o.catalog ?? (o.catalogFile ? await readSecretFile(o.catalogFile, 'catalog URL') : process.env.CAIRN_CATALOG_URL);
        const receiver = await startReceiver({
          storage: o.storage,
          host: o.host,
          port,
          catalog,
          token: o.tokenFile ? await readSecretFile(o.tokenFile, 'token') : undefined,
          maxSize: o.maxSize ? requireSize(o.maxSize, '--max-size') : undefined,
          keep,
          logger: o.log,
        });
        if (ctx.opts.json) ctx.json({ message_type: 'listening', url: receiver.url });
        else ctx.write(`receiver listening on ${receiver.url}\n`);
        await new Promise<void>((resolve) => {
          if (ctx.signal.aborted) return resolve();
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        await receiver.close();
      }),
    );
}
