import fs from 'node:fs/promises';
import { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { Repository } from '../../repository/repository.js';
import type { FileType } from '../../backend/backend.js';
import { addKey, listKeys, parseKeyFile } from '../../repository/keyfile.js';
import { removeLocks } from '../../repository/lock.js';
import { checkRepository, parseReadDataSubset, type CheckResult } from '../../maintenance/check.js';
import { parsePackTail } from '../../repository/pack.js';
import { shortId } from '../../repository/id.js';
import { findSnapshot } from '../../repository/find.js';
import { configToJSON } from '../../repository/config.js';
import { plaintextLength } from '../../repository/master-index.js';
import { MIGRATIONS, findMigration } from '../../maintenance/migrate.js';
import { formatBytes } from '../progress.js';
import type { Run } from '../program.js';
import { prewarmWorkers } from '../../repository/worker-pool.js';

export function registerRepoCommands(program: Command, run: Run): void {
  program
    .command('init')
    .description('create a new repository')
    .option('--repository-version <v>', 'repository format version: 1, 2, stable or latest (both 2, as in restic 0.14)', '2')
    .option('--copy-chunker-params', "use --from-repo's chunker parameters, so that copy between the two deduplicates fully")
    .option('--from-repo <location>', 'the repository to take chunker parameters from (env CAIRN_FROM_REPOSITORY)')
    .option('--from-password-file <file>', "its password file (env CAIRN_FROM_PASSWORD_FILE)")
    .option('--from-password-command <command>', 'a command that prints its password (env CAIRN_FROM_PASSWORD_COMMAND)')
    .action((o: { repositoryVersion: string; copyChunkerParams?: boolean; fromRepo?: string; fromPasswordFile?: string; fromPasswordCommand?: string }) =>
      run(async (ctx) => {
        const v = o.repositoryVersion === 'latest' || o.repositoryVersion === 'stable' ? '2' : o.repositoryVersion;
        if (v !== '1' && v !== '2') throw new CairnError('BAD_INPUT', `invalid --repository-version ${JSON.stringify(v)}: use 1, 2, stable or latest`);
        let polynomial: bigint | undefined;
        if (o.copyChunkerParams) {
          const from = o.fromRepo ?? process.env.CAIRN_FROM_REPOSITORY ?? process.env.RESTIC_FROM_REPOSITORY;
          if (!from) throw new CairnError('BAD_INPUT', '--copy-chunker-params needs the repository to copy them from: --from-repo (or CAIRN_FROM_REPOSITORY)');
          polynomial = (await ctx.openOtherRepository(from, o.fromPasswordFile, o.fromPasswordCommand)).config.polynomial;
        }
        const backend = ctx.backend();
        let repo: Repository;
        try {
          repo = await Repository.init(backend, await ctx.newPassword(), { version: Number(v) as 1 | 2, polynomial });
        } finally {
          await backend.close();
        }
        if (ctx.opts.json) ctx.json({ message_type: 'initialized', id: repo.config.id, repository: backend.location });
        else ctx.print(`created cairn repository ${shortId(repo.config.id)} at ${backend.location}\n\nPlease note that knowledge of your password is required to access\nthe repository. Losing your password means that your data is\nirrecoverably lost.`);
      }),
    );

  program
    .command('check')
    .description('check the repository for errors')
    .option('--read-data', 'read and verify every pack file')
    .option('--read-data-subset <subset>', "read and verify some pack files: group n of t ('n/t'), a random percentage ('10%') or random packs up to a size ('500M')")
    .action((o: { readData?: boolean; readDataSubset?: string }) =>
      run(async (ctx) => {
        if (o.readData && o.readDataSubset !== undefined) throw new CairnError('BAD_INPUT', '--read-data and --read-data-subset cannot be used together');
        const subset = o.readDataSubset !== undefined ? parseReadDataSubset(o.readDataSubset) : undefined;
        const readData = Boolean(o.readData || subset);
        // The workers load while the key is derived; the pool made below takes them.
        if (readData) prewarmWorkers();
        const repo = await ctx.openRepository();
        // Workers boot while the lock settles and the index loads; check only reads until it reports.
        const pool = readData ? ctx.pool(repo).start() : null;
        const lock = await ctx.lock(repo, false, { overlap: true });
        const progress = ctx.progress();
        // With --json, standard output holds the summary alone.
        const say = (line: string): void => {
          if (!ctx.opts.json) ctx.print(line);
        };
        say('load indexes\ncheck all packs\ncheck snapshots, trees and blobs' + (o.readData ? '\nread all data' : subset ? `\nread ${subset.label} of the packs` : ''));
        let r: CheckResult;
        try {
          r = await checkRepository(repo, pool, {
            readData,
            readSubset: subset?.select,
            signal: ctx.signal,
            onProgress: (p) => progress.update({ filesDone: p.done, filesTotal: p.total, bytesDone: 0, errors: 0, phase: p.phase }),
          });
        } finally {
          // A client that held the repository first wins over whatever this check found meanwhile.
          await lock.confirmed;
        }
        progress.done({ filesDone: r.packs, bytesDone: 0, errors: r.errors.length });
        if (ctx.opts.json) {
          ctx.json({ message_type: 'summary', errors: r.errors, warnings: r.warnings, packs: r.packs, packs_read: r.packsRead, bytes_read: r.bytesRead, snapshots: r.snapshots });
        }
        for (const w of r.warnings) ctx.warn(w);
        for (const e of r.errors) ctx.err.write(`error: ${e}\n`);
        if (subset) say(`read ${r.packsRead} of ${r.packs} packs (${formatBytes(r.bytesRead)})`);
        if (r.errors.length > 0) throw new CairnError('INTEGRITY', `Fatal: repository contains errors (${r.errors.length})`);
        say('no errors were found');
      }),
    );

  program
    .command('migrate [names...]')
    .description("apply restic's migrations (upgrade_repo_v2); with no name, list those this repository can take")
    .option('-f, --force', 'apply a migration even when it says it does not apply')
    .action((names: string[], o: { force?: boolean }) =>
      run(async (ctx) => {
        const chosen = names.map(findMigration);
        const repo = await ctx.openRepository();
        await ctx.lock(repo, true);
        const say = (line: string): void => {
          if (!ctx.opts.json) ctx.print(line);
        };
        if (chosen.length === 0) {
          const available = MIGRATIONS.filter((m) => m.refusal(repo) === null);
          if (ctx.opts.json) ctx.json(available.map((m) => ({ name: m.name, description: m.description })));
          else ctx.write(`available migrations:\n${available.map((m) => `  ${m.name}: ${m.description}\n`).join('')}`);
          return;
        }
        for (const m of chosen) {
          const refusal = m.refusal(repo);
          if (refusal !== null && !o.force) {
            ctx.warn(`migration ${m.name} cannot be applied: ${refusal}\nIf you want to apply this migration anyway, re-run with option --force`);
            if (ctx.opts.json) ctx.json({ message_type: 'migration', name: m.name, applied: false, reason: refusal });
            continue;
          }
          if (refusal !== null) ctx.warn(`check for migration ${m.name} failed (${refusal}), continuing anyway`);
          if (m.checkFirst) {
            say('checking repository integrity...');
            const r = await checkRepository(repo, null, { signal: ctx.signal });
            for (const e of r.errors) ctx.err.write(`error: ${e}\n`);
            if (r.errors.length > 0) throw new CairnError('INTEGRITY', `the repository has errors (${r.errors.length}): migration ${m.name} not applied; repair them first (cairn check, cairn repair)`);
          }
          say(`applying migration ${m.name}...`);
          await m.apply(repo, ctx.signal);
          if (ctx.opts.json) ctx.json({ message_type: 'migration', name: m.name, applied: true });
          say(`migration ${m.name}: success`);
          if (m.name === 'upgrade_repo_v2') say('new data is compressed from now on; "cairn prune --repack-uncompressed" compresses the data already stored');
        }
      }),
    );

  program
    .command('list <type>')
    .description('list the ids of a kind of repository file (packs, index, snapshots, keys, locks) or of blobs (from the index)')
    .action((kind: string) =>
      run(async (ctx) => {
        const types: Record<string, FileType> = { packs: 'data', index: 'index', snapshots: 'snapshot', keys: 'key', locks: 'lock' };
        if (kind !== 'blobs' && !(kind in types)) throw new CairnError('BAD_INPUT', `invalid type ${JSON.stringify(kind)}: use blobs, packs, index, snapshots, keys or locks`);
        const repo = await ctx.openRepository();
        if (kind === 'blobs') {
          await repo.loadIndex();
          for (const [k, loc] of repo.index.entries()) ctx.write(`${loc.type} ${k.slice(-64)}\n`);
          return;
        }
        for await (const f of repo.backend.list(types[kind])) ctx.write(`${f.name}\n`);
      }),
    );

  program
    .command('unlock')
    .description('remove stale locks (all locks with --remove-all)')
    .option('--remove-all', 'remove all locks, even those still in use')
    .action((o: { removeAll?: boolean }) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const removed = await removeLocks(repo, Boolean(o.removeAll));
        ctx.print(removed.length === 0 ? 'no locks were removed' : `successfully removed ${removed.length} lock(s)`);
      }),
    );

  const key = program.command('key').description('manage keys (passwords)');
  key
    .command('list')
    .description('list keys')
    .action(() =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const keys = await listKeys(repo.backend);
        if (ctx.opts.json) {
          ctx.json(keys.map((k) => ({ current: k.id === repo.keyId, id: shortId(k.id), userName: k.username, hostName: k.hostname, created: k.created })));
          return;
        }
        ctx.write(' ID        User        Host              Created\n');
        for (const k of keys) ctx.write(`${k.id === repo.keyId ? '*' : ' '}${shortId(k.id)}  ${k.username.padEnd(10)}  ${k.hostname.padEnd(16)}  ${k.created}\n`);
      }),
    );
  const newPassword = async (file: string | undefined): Promise<string> => {
    const f = file ?? process.env.CAIRN_NEW_PASSWORD_FILE;
    if (!f) throw new CairnError('BAD_INPUT', 'no new password given: use --new-password-file');
    const text = (await fs.readFile(f, 'utf8')).split(/\r?\n/)[0];
    if (!text) throw new CairnError('BAD_INPUT', 'the new password is empty');
    return text;
  };
  key
    .command('add')
    .description('add a new key (password)')
    .option('--new-password-file <file>', 'file with the new password')
    .action((o: { newPasswordFile?: string }) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const id = await addKey(repo.backend, repo.key, await newPassword(o.newPasswordFile));
        ctx.print(`saved new key as ${shortId(id)}`);
      }),
    );
  key
    .command('passwd')
    .description('change the password: adds a key for the new one and removes the current')
    .option('--new-password-file <file>', 'file with the new password')
    .action((o: { newPasswordFile?: string }) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const id = await addKey(repo.backend, repo.key, await newPassword(o.newPasswordFile));
        await repo.backend.remove({ type: 'key', name: repo.keyId });
        ctx.print(`saved new key as ${shortId(id)}; removed the old key ${shortId(repo.keyId)}`);
      }),
    );
  key
    .command('remove <id>')
    .description('remove a key (not the one in use)')
    .action((ref: string) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const id = await repo.resolveId('key', ref);
        if (id === repo.keyId) throw new CairnError('BAD_INPUT', 'refusing to remove the key currently used to access the repository');
        await repo.backend.remove({ type: 'key', name: id });
        ctx.print(`removed key ${shortId(id)}`);
      }),
    );

  program
    .command('cat <type> [id]')
    .description('print internal objects: config, masterkey, key, snapshot, index, lock, pack, blob, tree')
    .action((type: string, ref: string | undefined) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        const need = (): string => {
          if (!ref) throw new CairnError('BAD_INPUT', `cat ${type} needs an id`);
          return ref;
        };
        switch (type) {
          case 'config':
            return ctx.write(`${JSON.stringify(configToJSON(repo.config), null, 2)}\n`);
          case 'masterkey':
            return ctx.write(`${JSON.stringify(repo.key.toJSON(), null, 2)}\n`);
          case 'key': {
            const id = await repo.resolveId('key', need());
            return ctx.write(`${JSON.stringify(parseKeyFile(await repo.backend.load({ type: 'key', name: id }), id), null, 2)}\n`);
          }
          case 'snapshot': {
            const s = await findSnapshot(repo, need());
            const { id: _id, ...json } = s;
            return ctx.write(`${JSON.stringify(json, null, 2)}\n`);
          }
          case 'index':
          case 'lock': {
            const id = await repo.resolveId(type, need());
            return ctx.write(`${JSON.stringify(await repo.loadJSON(type, id), null, 2)}\n`);
          }
          case 'pack': {
            const id = await repo.resolveId('data', need());
            return ctx.write(await repo.backend.load({ type: 'data', name: id }));
          }
          case 'header': {
            const id = await repo.resolveId('data', need());
            const data = await repo.backend.load({ type: 'data', name: id });
            const r = parsePackTail(repo.key, data, data.length, id);
            return ctx.write(`${JSON.stringify('blobs' in r ? r.blobs : [], null, 2)}\n`);
          }
          case 'blob':
          case 'tree': {
            await repo.loadIndex();
            const id = need();
            const t = type === 'tree' || (!repo.index.has('data', id) && repo.index.has('tree', id)) ? 'tree' : 'data';
            return ctx.write(await repo.loadBlob(t, id));
          }
          default:
            throw new CairnError('BAD_INPUT', `unknown type ${JSON.stringify(type)} for cat: use config, masterkey, key, snapshot, index, lock, pack, blob or tree`);
        }
      }),
    );

  program
    .command('stats [snapshots...]')
    .description('show repository statistics')
    .option('--mode <mode>', 'restore-size, files-by-contents, raw-data or blobs-per-file', 'restore-size')
    .action((refs: string[], o: { mode: string }) =>
      run(async (ctx) => {
        const repo = await ctx.openRepository();
        await repo.loadIndex();
        const snaps = refs.length > 0 ? await Promise.all(refs.map((r) => findSnapshot(repo, r))) : await repo.listSnapshots();
        const seenTrees = new Set<string>();
        const blobs = new Set<string>();
        const files = new Set<string>();
        let size = 0;
        let count = 0;
        const walk = async (tree: string, dir: string): Promise<void> => {
          const mode = o.mode;
          if (mode !== 'restore-size' && seenTrees.has(tree)) return;
          seenTrees.add(tree);
          blobs.add(`t${tree}`);
          for (const n of (await repo.loadTree(tree)).nodes) {
            const p = `${dir}/${n.name}`;
            if (n.type === 'dir' && n.subtree) await walk(n.subtree, p);
            if (mode === 'restore-size') {
              count++;
              size += n.type === 'file' ? (n.size ?? 0) : 0;
            } else if (mode === 'files-by-contents') {
              if (n.type !== 'file') continue;
              const k = (n.content ?? []).join(',');
              if (!files.has(k)) {
                files.add(k);
                count++;
                size += n.size ?? 0;
              }
            } else for (const b of n.content ?? []) blobs.add(b);
          }
        };
        if (!['restore-size', 'files-by-contents', 'raw-data', 'blobs-per-file'].includes(o.mode)) {
          throw new CairnError('BAD_INPUT', `unknown --mode ${JSON.stringify(o.mode)}`);
        }
        for (const s of snaps) await walk(s.tree, '');
        // raw-data also tells how far compression has come, as restic 0.15 and later do: the
        // plaintext of every blob, and of the compressed ones what they hold and what they take.
        const packed = { plain: 0, compressedPlain: 0, compressedStored: 0 };
        if (o.mode === 'raw-data' || o.mode === 'blobs-per-file') {
          size = 0;
          for (const b of blobs) {
            const loc = b.startsWith('t') ? repo.index.lookup('tree', b.slice(1)) : repo.index.lookup('data', b);
            if (!loc) continue;
            size += loc.length;
            packed.plain += plaintextLength(loc);
            if (loc.uncompressedLength !== undefined) {
              packed.compressedPlain += loc.uncompressedLength;
              packed.compressedStored += loc.length;
            }
          }
          count = blobs.size;
        }
        const raw = o.mode === 'raw-data';
        const compression = {
          total_uncompressed_size: raw ? packed.plain : 0,
          compression_ratio: raw && packed.compressedStored > 0 ? packed.compressedPlain / packed.compressedStored : 0,
          compression_progress: raw && packed.plain > 0 ? (packed.compressedPlain / packed.plain) * 100 : 0,
          compression_space_saving: raw && packed.plain > 0 ? (1 - size / packed.plain) * 100 : 0,
        };
        if (ctx.opts.json) {
          // Zero compression figures are left out, as restic leaves them out.
          const shown = Object.fromEntries(Object.entries(compression).filter(([, v]) => v > 0));
          ctx.json({ total_size: size, ...shown, total_file_count: raw ? undefined : count, total_blob_count: raw ? count : undefined, snapshots_count: snaps.length });
          return;
        }
        ctx.write(`Stats in ${o.mode} mode:\n     Snapshots processed:  ${snaps.length}\n`);
        ctx.write(raw ? `        Total Blob Count:  ${count}\n` : `        Total File Count:  ${count}\n`);
        if (raw) ctx.write(` Total Uncompressed Size:  ${formatBytes(packed.plain)}\n`);
        ctx.write(`              Total Size:  ${formatBytes(size)}\n`);
        if (compression.compression_progress > 0) ctx.write(`    Compression Progress:  ${compression.compression_progress.toFixed(2)}%\n`);
        if (compression.compression_ratio > 0) ctx.write(`       Compression Ratio:  ${compression.compression_ratio.toFixed(2)}x\n`);
        if (compression.compression_space_saving > 0) ctx.write(`Compression Space Saving:  ${compression.compression_space_saving.toFixed(2)}%\n`);
      }),
    );
}
