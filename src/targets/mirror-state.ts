import fs from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Excluder } from '../archiver/excludes.js';
import { CairnError } from '../errors.js';
import { errorText, walkTree, type SkippedItem } from './source.js';
import type { ObjectStore } from './store.js';

/** The mirror's record of what the destination holds, kept at the destination itself. */
export const MANIFEST = '.cairn-mirror.json';
/** Versions replaced or deleted, when the trash is on: `.cairn-trash/<timestamp>/<path>`. */
export const TRASH = '.cairn-trash';

const entrySchema = z.object({ size: z.number(), mtimeMs: z.number(), sha256: z.string() });
const manifestSchema = z.object({ version: z.literal(1), files: z.record(z.string(), entrySchema), emptyDirs: z.array(z.string()) });
export type ManifestEntry = z.infer<typeof entrySchema>;
export type Manifest = z.infer<typeof manifestSchema>;

/** Reads the manifest; a destination without one (a first run) has an empty one. A damaged one is ignored, which costs a full upload. */
export async function readManifest(store: ObjectStore): Promise<Manifest> {
  const data = await store.get(MANIFEST);
  if (data !== undefined) {
    try {
      const parsed = manifestSchema.safeParse(JSON.parse(data.toString('utf8')));
      if (parsed.success) return parsed.data;
    } catch {
      // Unreadable JSON: fall through to an empty manifest.
    }
  }
  return { version: 1, files: {}, emptyDirs: [] };
}

export async function writeManifest(store: ObjectStore, m: Manifest): Promise<void> {
  const files = Object.fromEntries(Object.entries(m.files).sort(([a], [b]) => (a < b ? -1 : 1)));
  await store.put(MANIFEST, Buffer.from(JSON.stringify({ version: 1, files, emptyDirs: [...m.emptyDirs].sort() })));
}

/** A source file as the mirror sees it. */
export interface LocalFile {
  size: number;
  mtimeMs: number;
}

/** The source tree: files by relative path, and the folders that hold nothing mirrored (kept as empty folders). */
export interface SourceState {
  files: Map<string, LocalFile>;
  emptyDirs: Set<string>;
}

/** Names at the top of the source that would collide with the mirror's own bookkeeping. */
function reserved(rel: string): boolean {
  return rel === MANIFEST || rel === TRASH || rel.startsWith(`${TRASH}/`);
}

/** Adds what lies below `below` ('' for the whole tree), and `below` itself when it is an empty folder. */
async function scanInto(state: SourceState, root: string, excluder: Excluder, skipped: SkippedItem[], below: string): Promise<void> {
  const dirs: string[] = below === '' ? [] : [below];
  const nonEmpty = new Set<string>();
  const markParents = (rel: string) => {
    for (let p = path.posix.dirname(rel); p !== '.' && !nonEmpty.has(p); p = path.posix.dirname(p)) nonEmpty.add(p);
  };
  for await (const e of walkTree(root, excluder, (s) => skipped.push(s), below)) {
    if (reserved(e.rel)) {
      skipped.push({ path: e.abs, error: `the name ${JSON.stringify(e.rel)} is the mirror's own; not mirrored` });
      continue;
    }
    if (e.kind === 'symlink') {
      skipped.push({ path: e.abs, error: 'symbolic link: not mirrored' });
      continue;
    }
    markParents(e.rel);
    if (e.kind === 'dir') dirs.push(e.rel);
    else state.files.set(e.rel, { size: e.stat.size, mtimeMs: e.stat.mtimeMs });
  }
  for (const d of dirs) if (!nonEmpty.has(d)) state.emptyDirs.add(d);
}

export async function scanSource(root: string, excluder: Excluder, skipped: SkippedItem[]): Promise<SourceState> {
  const state: SourceState = { files: new Map(), emptyDirs: new Set() };
  await scanInto(state, root, excluder, skipped, '');
  return state;
}

/**
 * The source state after changes to `changed` (absolute, or relative to the root) only, starting from what
 * the manifest recorded: each changed path is forgotten and, where it still exists, read again (a folder
 * with everything below it); the folders above it are checked for having become empty or not.
 */
export async function patchSource(manifest: Manifest, root: string, changed: string[], excluder: Excluder, skipped: SkippedItem[]): Promise<SourceState> {
  const state: SourceState = {
    files: new Map(Object.entries(manifest.files).map(([rel, e]) => [rel, { size: e.size, mtimeMs: e.mtimeMs }])),
    emptyDirs: new Set(manifest.emptyDirs),
  };
  const parents = new Set<string>();
  for (const p of changed) {
    const rel = path.relative(root, path.resolve(root, p)).split(path.sep).join('/');
    if (rel.startsWith('..') || path.isAbsolute(rel)) continue;
    if (rel === '') return scanSource(root, excluder, skipped);
    const under = (k: string) => k === rel || k.startsWith(`${rel}/`);
    for (const k of [...state.files.keys()]) if (under(k)) state.files.delete(k);
    for (const k of [...state.emptyDirs]) if (under(k)) state.emptyDirs.delete(k);
    for (let d = path.posix.dirname(rel); d !== '.'; d = path.posix.dirname(d)) parents.add(d);
    const abs = path.join(root, rel);
    if (excluder.excluded(abs) || reserved(rel)) continue;
    let stat;
    try {
      stat = await fs.lstat(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') skipped.push({ path: abs, error: errorText(err) });
      continue;
    }
    if (stat.isFile()) state.files.set(rel, { size: stat.size, mtimeMs: stat.mtimeMs });
    else if (stat.isDirectory()) await scanInto(state, root, excluder, skipped, rel);
  }
  for (const d of parents) {
    state.emptyDirs.delete(d);
    const stat = await fs.lstat(path.join(root, d)).catch(() => undefined);
    if (stat?.isDirectory() !== true || excluder.excluded(path.join(root, d))) continue;
    const prefix = `${d}/`;
    const holds = [...state.files.keys(), ...state.emptyDirs].some((k) => k.startsWith(prefix));
    if (!holds) state.emptyDirs.add(d);
  }
  return state;
}

/** Source roots must be folders; a mirror into its own source would copy itself forever. */
export async function checkMirrorSource(root: string, dest: string): Promise<void> {
  let stat;
  try {
    stat = await fs.stat(root);
  } catch (err) {
    throw new CairnError('NOT_FOUND', `mirror source ${root} cannot be read (${errorText(err)})`, { cause: err });
  }
  if (!stat.isDirectory()) throw new CairnError('BAD_INPUT', `mirror source ${root} is not a folder: a mirror keeps a folder 1:1`);
  if (!dest.startsWith('s3:')) {
    const rel = path.relative(root, path.resolve(dest));
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) throw new CairnError('BAD_INPUT', `the mirror destination ${path.resolve(dest)} lies inside its source ${root}`);
  }
}
