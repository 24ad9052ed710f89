/**
 * Archive and mirror targets: where a plan's files go when they do not go into a repository.
 * This is the whole interface the daemon and the CLI use.
 */
export { runArchive, type ArchiveOptions, type ArchiveResult } from './archive.js';
export { runMirror, type MirrorOptions, type MirrorResult } from './mirror.js';
export type { SkippedItem, TargetProgress, TargetSource } from './source.js';
export {
  archiveTargetSchema,
  checkTarget,
  CODECS,
  keepSchema,
  mirrorTargetSchema,
  parseAge,
  parseDestination,
  parseTargetSpec,
  targetSchema,
  targetSpecSchema,
  type ArchiveTarget,
  type Codec,
  type Destination,
  type Keep,
  type MirrorTarget,
} from './spec.js';
