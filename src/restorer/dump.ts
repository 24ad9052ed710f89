/**
 * `dump` of a folder: everything below it in a snapshot as one tar or zip stream, as restic's dump
 * writes it. Entries are named by their path in the snapshot without the leading slash
 * (`home/a/file`), folders first, then what they hold, in the snapshot's order; files with their
 * content (hash-checked blob by blob as it is loaded), symlinks as links, and mode, owner and mtime
 * as the snapshot has them. Devices, fifos and sockets are left out, as restic leaves them out.
 */
import { finished, pipeline } from 'node:stream/promises';
import { Readable, type Writable } from 'node:stream';
import tar from 'tar-stream';
import yazl from 'yazl';
import { CairnError } from '../errors.js';
import type { Node } from '../fs/node.js';
import { unixPermFromGoMode } from '../fs/filemode.js';
import { parseTime } from '../fs/time.js';
import type { Id } from '../repository/id.js';
import type { Repository } from '../repository/repository.js';
import { addTarEntry } from '../util/tar-entry.js';
import { fileContent } from './file-stream.js';

export type DumpFormat = 'tar' | 'zip';

export function parseDumpFormat(s: string): DumpFormat {
  if (s === 'tar' || s === 'zip') return s;
  throw new CairnError('BAD_INPUT', `invalid --archive ${JSON.stringify(s)}: use tar or zip`);
}

interface Entry {
  name: string;
  node: Node;
}

/** The nodes below the folder `dir` (its tree `tree`), depth first, a folder before its contents. */
async function* walk(repo: Repository, tree: Id, dir: string, signal?: AbortSignal): AsyncGenerator<Entry> {
  for (const node of (await repo.loadTree(tree)).nodes) {
    signal?.throwIfAborted();
    const p = `${dir === '/' ? '' : dir}/${node.name}`;
    if (node.type === 'dir') {
      yield { name: `${p.slice(1)}/`, node };
      if (node.subtree) yield* walk(repo, node.subtree, p, signal);
    } else if (node.type === 'file' || node.type === 'symlink') yield { name: p.slice(1), node };
  }
}

/**
 * The node's mtime in whole seconds as restic's dump writes it: to the nearest second in a tar
 * header, cut to the second in a zip.
 */
function mtimeOf(node: Node, round: (seconds: number) => number): Date {
  try {
    return new Date(round(Number(parseTime(node.mtime) / 1_000_000n) / 1000) * 1000);
  } catch {
    return new Date(0);
  }
}

/** Writes the folder `dir` (absolute, as `ls` shows it; its tree is `tree`) of a snapshot to `out` as a tar or zip. */
export async function dumpFolder(repo: Repository, tree: Id, dir: string, format: DumpFormat, out: Writable, signal?: AbortSignal): Promise<void> {
  if (format === 'tar') {
    const pack = tar.pack();
    const fill = (async () => {
      for await (const { name, node } of walk(repo, tree, dir, signal)) {
        const header = { name, mode: unixPermFromGoMode(node.mode ?? 0), uid: node.uid, gid: node.gid, uname: node.user, gname: node.group, mtime: mtimeOf(node, Math.round) };
        if (node.type === 'dir') await addTarEntry(pack, { ...header, type: 'directory' });
        else if (node.type === 'symlink') await addTarEntry(pack, { ...header, type: 'symlink', linkname: node.linktarget ?? '' });
        else await addTarEntry(pack, { ...header, type: 'file', size: node.size ?? 0 }, Readable.from(fileContent(repo, node)));
      }
      pack.finalize();
    })().catch((err: unknown) => {
      pack.destroy(err as Error);
      throw err;
    });
    const [filled, piped] = await Promise.allSettled([fill, pipeline(pack, out, { end: false })]);
    if (filled.status === 'rejected') throw filled.reason;
    if (piped.status === 'rejected') throw piped.reason;
    return;
  }
  const zip = new yazl.ZipFile();
  const failed = new Promise<never>((_, reject) => zip.on('error', reject));
  failed.catch(() => undefined);
  const piped = pipeline(zip.outputStream as Readable, out, { end: false });
  const fill = async (): Promise<void> => {
    for await (const { name, node } of walk(repo, tree, dir, signal)) {
      const perm = unixPermFromGoMode(node.mode ?? 0);
      const mtime = mtimeOf(node, Math.floor);
      if (node.type === 'dir') zip.addEmptyDirectory(name, { mtime, mode: 0o040000 | perm });
      // Info-ZIP's convention, which unzip restores: the link's mode, with its target as the contents.
      else if (node.type === 'symlink') zip.addBuffer(Buffer.from(node.linktarget ?? ''), name, { mtime, mode: 0o120000 | (perm || 0o777), compress: false });
      else {
        const body = Readable.from(fileContent(repo, node));
        const done = finished(body);
        zip.addReadStream(body, name, { size: node.size ?? 0, mtime, mode: 0o100000 | perm });
        await done;
      }
    }
    zip.end();
  };
  await Promise.race([Promise.all([fill(), piped]), failed]);
}
