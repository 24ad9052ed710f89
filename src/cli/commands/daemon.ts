import { Command } from 'commander';
import type { Run } from '../program.js';

interface DaemonFlags {
  config?: string;
  dataDir?: string;
  listen?: string;
  catalog?: string;
}

export function registerDaemon(program: Command, run: Run): void {
  program
    .command('daemon')
    .description('run the backup service: plans on schedules and watches, jobs, and the HTTP API')
    .option('--config <file>', 'configuration file (cairn.yaml or JSON)')
    .option('--data-dir <dir>', 'data folder: catalog, API token, own repository (env CAIRN_DATA_DIR, default ./cairn-data)')
    .option('--listen <host:port>', 'address of the API (default 127.0.0.1:8470; port 0 picks a free one)')
    .option('--catalog <url>', 'catalog database: sqlite:PATH, mysql://… or postgres://… (env CAIRN_CATALOG)')
    .action((o: DaemonFlags) =>
      run(async (ctx) => {
        // Loaded here, not at the top: every other command starts faster without the service stack.
        const { Daemon } = await import('../../service/daemon.js');
        const daemon = await Daemon.start({ configFile: o.config, dataDir: o.dataDir, listen: o.listen, catalog: o.catalog });
        if (!ctx.signal.aborted) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
        await daemon.stop();
        // Native watchers and database pools may hold the loop open; the state is recorded, so leave.
        process.exit(0);
      }),
    );
}
