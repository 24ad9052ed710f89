import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Command } from 'commander';
import { CairnError } from '../../errors.js';
import { parseTimeOr, splitNs } from '../../fs/time.js';
import { SnapshotFs, type Entry } from '../../mount/snapshot-fs.js';
import type { Run } from '../program.js';
import { filterOf } from './restore.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** The part of fuse-napi (FUSE 3 through Node-API) used here. */
type Cb = (err: number | null, ...rest: unknown[]) => void;
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
}
interface FuseModule {
  new (mnt: string, ops: Record<string, (...args: never[]) => void>, opts: Record<string, unknown>): FuseInstance;
  checkEnvironment(opts?: Record<string, unknown>): Promise<unknown>;
  [errno: string]: unknown;
}

/**
 * The FUSE binding Cairn mounts with (package.json's `cairn.fuseBinding`, which CI installs too).
 * It is not among Cairn's dependencies: it compiles against the system's libfuse 3 when installed,
 * which would make every install need libfuse3-dev.
 */
export const FUSE_PACKAGE = (createRequire(import.meta.url)('../../../package.json') as { cairn: { fuseBinding: string } }).cairn.fuseBinding;

const INSTALL_HINT = `mount needs FUSE 3 and the ${FUSE_PACKAGE.split('@')[0]} module: apt-get install fuse3 libfuse3-dev pkg-config, then npm install --no-save ${FUSE_PACKAGE} in Cairn's folder; and /dev/fuse (in a container: --device /dev/fuse --cap-add SYS_ADMIN)`;

/** fuse-napi, or why it cannot be used here. */
function loadFuse(): FuseModule {
  try {
    return createRequire(import.meta.url)('fuse-napi') as FuseModule;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'MODULE_NOT_FOUND' ? 'fuse-napi is not installed' : e.message.split('\n')[0];
    throw new CairnError('BAD_INPUT', `${INSTALL_HINT} (${why})`);
  }
}

export function registerMount(program: Command, run: Run): void {
  program
    .command('mount <mountpoint>')
    .description('serve the repository\'s snapshots as a read-only file system (FUSE) at mountpoint until interrupted or unmounted')
    .option('-H, --host <host>', 'only snapshots of this host', collect, [])
    .option('--tag <tags>', 'only snapshots with these tags (comma-separated: all of them)', collect, [])
    .option('--path <path>', 'only snapshots with this path', collect, [])
    .option('--allow-other', 'let other users than the one who mounted reach the files (needs user_allow_other in /etc/fuse.conf when not root)')
    .option('--no-default-permissions', 'do not let the kernel check each file\'s mode and owner against the user who reads it')
    .option('--owner-root', 'show every file and folder as owned by root')
    .action((mountpoint: string, o: { host: string[]; tag: string[]; path: string[]; allowOther?: boolean; defaultPermissions: boolean; ownerRoot?: boolean }) =>
      run(async (ctx) => {
        const mnt = path.resolve(mountpoint);
        // A mount left by a cairn mount that was killed answers ENOTCONN until it is unmounted (a
        // stat may still come from the kernel's cache; a listing may not): this mount takes its place.
        const st = await fs.stat(mnt).then(
          async (s) => (s.isDirectory() ? fs.readdir(mnt).then(() => s) : s),
          (err: NodeJS.ErrnoException) => err,
        ).catch((err: NodeJS.ErrnoException) => err);
        const stale = st instanceof Error && st.code === 'ENOTCONN';
        if (st instanceof Error && !stale) {
          if (st.code === 'ENOENT') throw new CairnError('BAD_INPUT', `mount point ${mnt} does not exist: make the folder first`);
          throw new CairnError('BAD_INPUT', `mount point ${mnt} cannot be used: ${st.message}`);
        }
        if (!(st instanceof Error) && !st.isDirectory()) throw new CairnError('BAD_INPUT', `mount point ${mnt} is not a folder`);
        const Fuse = loadFuse();
        try {
          await Fuse.checkEnvironment();
        } catch (err) {
          throw new CairnError('BAD_INPUT', `${INSTALL_HINT} (${(err as Error).message.split('\n')[0]})`);
        }
        const repo = await ctx.openRepository();
        const lock = await ctx.lock(repo, false);
        await lock.confirmed;
        const tree = new SnapshotFs(repo, { filter: filterOf(o), onWarning: (message) => ctx.warn(`warning: ${message}`) });
        await tree.start();

        const errno = (name: string): number => Fuse[name] as number;
        const uid = o.ownerRoot ? 0 : (process.getuid?.() ?? 0);
        const gid = o.ownerRoot ? 0 : (process.getgid?.() ?? 0);
        const reported = new Set<string>();
        /** Runs an operation, answering its callback with the result or with the errno its failure maps to. */
        const answer = (cb: Cb, what: string, fn: () => Promise<unknown[] | number>): void => {
          fn().then(
            (r) => (typeof r === 'number' ? cb(r) : cb(0, ...r)),
            (err: unknown) => {
              // Damage or a backend that fails: the reader gets EIO, the user a line on stderr (once per path).
              const message = err instanceof Error ? err.message : String(err);
              if (!reported.has(what)) {
                reported.add(what);
                ctx.warn(`error: ${what}: ${message}`);
              }
              cb(errno('EIO'));
            },
          );
        };
        /** Like answer, for the entry at a path (ENOENT, not reported, when there is none). */
        const at = (p: string, cb: Cb, fn: (e: Entry) => Promise<unknown[] | number>): void => {
          const hit = tree.cached(p);
          if (hit) {
            answer(cb, p, () => fn(hit));
            return;
          }
          tree.lookup(p).then(
            (e) => (e ? answer(cb, p, () => fn(e)) : cb(errno('ENOENT'))),
            (err: unknown) => answer(cb, p, () => Promise.reject(err)),
          );
        };
        /** Attributes as FUSE takes them, made once per entry (getattr comes again and again). */
        const stats = new WeakMap<Entry, Record<string, unknown>>();
        const stat = (e: Entry): Record<string, unknown> => {
          let st = stats.get(e);
          if (!st) {
            st = makeStat(e);
            stats.set(e, st);
          }
          return st;
        };
        const makeStat = (e: Entry): Record<string, unknown> => {
          const mode = SnapshotFs.mode(e);
          if (e.kind !== 'node') {
            const t = splitNs(e.time);
            const size = e.kind === 'virtual-link' ? Buffer.byteLength(e.target) : 0;
            return { mode, uid, gid, size, nlink: e.kind === 'virtual-dir' ? 2 : 1, atime: t, mtime: t, ctime: t, blksize: 4096, blocks: 0 };
          }
          const n = e.node;
          const mtime = parseTimeOr(n.mtime, 0n);
          const size = n.type === 'file' ? (n.size ?? 0) : n.type === 'symlink' ? Buffer.byteLength(n.linktarget ?? '') : 0;
          return {
            mode,
            uid: o.ownerRoot ? 0 : n.uid,
            gid: o.ownerRoot ? 0 : n.gid,
            size,
            nlink: n.type === 'dir' ? 2 : (n.links ?? 1),
            rdev: n.device ?? 0,
            atime: splitNs(parseTimeOr(n.atime, mtime)),
            mtime: splitNs(mtime),
            ctime: splitNs(parseTimeOr(n.ctime, mtime)),
            blksize: 4096,
            blocks: Math.ceil(size / 512),
          };
        };
        const readOnly = (...args: unknown[]): void => (args[args.length - 1] as Cb)(errno('EROFS'));
        let handles = 0;
        const ops = {
          statfs: (_p: string, cb: Cb) => cb(0, { bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0, namemax: 255, flag: 1 }),
          getattr: (p: string, cb: Cb) => at(p, cb, async (e) => [stat(e)]),
          readdir: (p: string, cb: Cb) =>
            at(p, cb, async (e) => {
              const children = await tree.children(e);
              if (!children) return errno('ENOTDIR');
              return [['.', '..', ...children.keys()]];
            }),
          readlink: (p: string, cb: Cb) =>
            at(p, cb, async (e) => {
              if (e.kind === 'virtual-link') return [e.target];
              if (e.kind === 'node' && e.node.type === 'symlink') return [e.node.linktarget ?? ''];
              return errno('EINVAL');
            }),
          open: (p: string, flags: number, cb: Cb) =>
            at(p, cb, async (e) => {
              if ((flags & 3) !== 0) return errno('EROFS');
              if (e.kind !== 'node' || e.node.type === 'dir') return errno('EISDIR');
              return [++handles];
            }),
          read: (p: string, _fd: number, buf: Buffer, len: number, pos: number, cb: Cb) =>
            at(p, cb, async (e) => {
              if (e.kind !== 'node' || e.node.type !== 'file') return errno('EISDIR');
              return tree.read(e.node, buf, len, pos);
            }),
          listxattr: (p: string, cb: Cb) => at(p, cb, async (e) => [e.kind === 'node' ? (e.node.extended_attributes ?? []).map((a) => a.name) : []]),
          getxattr: (p: string, name: string, _position: number, cb: Cb) =>
            at(p, cb, async (e) => {
              const a = e.kind === 'node' ? e.node.extended_attributes?.find((x) => x.name === name) : undefined;
              return a ? [Buffer.from(a.value, 'base64')] : errno('ENODATA');
            }),
          create: readOnly,
          mkdir: readOnly,
          mknod: readOnly,
          unlink: readOnly,
          rmdir: readOnly,
          rename: readOnly,
          symlink: readOnly,
          link: readOnly,
          chmod: readOnly,
          chown: readOnly,
          truncate: readOnly,
          utimens: readOnly,
          write: readOnly,
          setxattr: readOnly,
          removexattr: readOnly,
          destroy: (cb: Cb) => {
            cb(0);
            ended();
          },
        };
        let ended: () => void = () => undefined;
        const done = new Promise<void>((resolve) => {
          ended = resolve;
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        const fuse = new Fuse(mnt, ops, {
          fsname: 'cairn',
          force: stale,
          subtype: 'cairn',
          allowOther: !!o.allowOther,
          defaultPermissions: o.defaultPermissions,
          // Loading a blob from a slow remote may take long; other operations answer from memory.
          timeout: { default: 120_000, read: 600_000 },
          // A snapshot's files never change: the kernel may keep their pages and attributes
          // (the folders of snapshots are listed afresh each time; new ones show within seconds).
          kernelCache: true,
          entryTimeout: 30,
          attrTimeout: 30,
        });
        // FUSE's threads do not hold the event loop open: this does, until the mount ends.
        const alive = setInterval(() => undefined, 3_600_000);
        try {
          await new Promise<void>((resolve, reject) =>
            fuse.mount((err) =>
              err ? reject(new CairnError('BAD_INPUT', `mounting at ${mnt} failed: ${err.message}${/in use/i.test(err.message) ? ' (a file system is mounted there already: unmount it first)' : ''}`)) : resolve(),
            ),
          );
        } catch (err) {
          clearInterval(alive);
          throw err;
        }
        if (stale) ctx.warn(`replaced the mount at ${mnt} left by a process that ended`);
        const count = tree.snapshots.length;
        if (ctx.opts.json) ctx.json({ message_type: 'serving', mount_point: mnt, snapshots: count });
        ctx.print(`Now serving the repository at ${mnt} (${count} snapshot${count === 1 ? '' : 's'})`);
        ctx.print('Use another terminal or tool to browse the contents of this folder.');
        ctx.print('When finished, quit with Ctrl-c here or umount the mountpoint.');
        try {
          await done;
        } finally {
          clearInterval(alive);
          await new Promise<void>((resolve) => fuse.unmount(() => resolve()));
        }
      }),
    );
}
