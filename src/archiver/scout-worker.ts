import { lstatSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { utf8Compare } from '../fs/node.js';
import { fromWire, joinPath, pathKey, showPath, type FsPath } from '../fs/fspath.js';
import { buildExcluder, sourceInTaggedFolder, taggedFolderKeeps } from './excludes.js';
import { LOADED } from '../util/worker.js';
import { errorToWire, listDir, listedEntry, listedIsDir } from './listing.js';
import type { ScoutInit, ScoutReply, ScoutRequest } from './scout.js';

/**
 * Reads folders for the backup walk on its own thread: readdir and lstat of every entry, depth
 * first in the walk's order, skipping what the walk skips (excluded paths, other file systems),
 * while the main thread turns earlier listings into nodes. What the walk asks for is served first
 * and the walk goes on below it; reading ahead stops while the listings not yet taken hold the
 * credit the main thread gave, and goes on as it gives more back.
 */
const port = parentPort!;
const init = workerData as ScoutInit;
const excluder = await buildExcluder({ exclude: init.exclude, iexclude: init.iexclude, tags: init.tags });
const excluded = excluder.patterns.length > 0 ? excluder.excluded : undefined;

interface Task {
  seq: number;
  dir: FsPath;
  rootDev: bigint;
}

/** Asked for by the walk: served before reading ahead. */
const asked: Task[] = [];
/** Read ahead, depth first: the next folder is on top. */
const ahead: Task[] = [];
/** Folders the walk asked for itself, skipped when reading ahead reaches them. */
const served = new Set<string>();
let credit = init.credit;
let scheduled = false;

/** Up to this long per turn: replies go out in batches, and the walk's requests wait at most this long. */
const TURN_MS = 0.3;

function serve(): void {
  scheduled = false;
  const replies: ScoutReply[] = [];
  const transfer: ArrayBuffer[] = [];
  const until = performance.now() + TURN_MS;
  do {
    let t = asked.pop();
    if (t) served.add(pathKey(t.dir));
    else if (credit > 0) {
      t = ahead.pop();
      if (t && served.delete(pathKey(t.dir))) continue;
    }
    if (!t) break;
    try {
      const listing = listDir(t.dir);
      replies.push({ seq: t.seq, dir: t.dir, listing });
      transfer.push(listing.stats.buffer as ArrayBuffer);
      if (t.seq === 0) credit -= listing.names.length + 1;
      const below: Task[] = [];
      // A tagged folder's contents are left out (but for its tag file): the walk goes no further.
      const keeps = excluder.tags.length > 0 ? taggedFolderKeeps(t.dir, listing.names, excluder.tags) : null;
      for (let i = 0; i < listing.names.length; i++) {
        if (!listedIsDir(listing, i) || (keeps && (listing.raws?.[i] || !keeps.has(listing.names[i])))) continue;
        const e = listedEntry(listing, i);
        const p = joinPath(t.dir, e.name, e.nameRaw);
        if (init.oneFileSystem && !(e.stat instanceof Error) && e.stat.dev !== t.rootDev) continue;
        if (excluded?.(showPath(p))) continue;
        below.push({ seq: 0, dir: p, rootDev: t.rootDev });
      }
      for (let i = below.length - 1; i >= 0; i--) ahead.push(below[i]);
    } catch (err) {
      replies.push({ seq: t.seq, dir: t.dir, error: errorToWire(err) });
    }
  } while (performance.now() < until);
  if (replies.length > 0) port.postMessage(replies, transfer);
  schedule();
}

/** The sources, read ahead from the start: the first source is on top. */
function seed(): void {
  const roots = [...init.seeds].sort(utf8Compare);
  for (let i = roots.length - 1; i >= 0; i--) {
    try {
      const st = lstatSync(roots[i], { bigint: true });
      if (st.isDirectory() && !excluded?.(roots[i]) && !sourceInTaggedFolder(roots[i], excluder.tags)) ahead.push({ seq: 0, dir: roots[i], rootDev: st.dev });
    } catch {
      // The walk reports what cannot be read.
    }
  }
  schedule();
}

function schedule(): void {
  if (!scheduled && (asked.length > 0 || (credit > 0 && ahead.length > 0))) {
    scheduled = true;
    setImmediate(serve);
  }
}

seed();

port.on('message', (m: ScoutRequest) => {
  if (m.op === 'credit') credit += m.entries;
  else asked.push({ seq: m.seq, dir: fromWire(m.dir), rootDev: m.rootDev });
  schedule();
});

port.postMessage(LOADED);
