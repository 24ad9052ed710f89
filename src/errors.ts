/**
 * One error type for the whole engine. Each `code` is stable: the CLI maps it to an exit code,
 * the HTTP layer to a status and a JSON body `{"error":{"code","message"}}`.
 * Messages say what went wrong and what to do; they never contain secrets.
 */
export type ErrorCode =
  | 'BAD_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'UNAUTHORIZED'
  | 'TOO_LARGE'
  | 'REPO_NOT_FOUND'
  | 'REPO_EXISTS'
  | 'NOT_A_REPOSITORY'
  | 'WRONG_PASSWORD'
  | 'LOCKED'
  | 'INTEGRITY'
  | 'BACKEND_UNAVAILABLE'
  | 'PARTIAL'
  | 'SOURCE_FAILED'
  | 'INTERRUPTED'
  | 'NO_SPACE'
  | 'UNWRITABLE'
  | 'INTERNAL';

export class CairnError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CairnError';
    this.code = code;
  }
}

/** Exit codes follow restic: 0 ok, 1 error, 3 some source files unreadable, 10 no repository, 11 locked, 12 wrong password, 130 interrupted. */
export function exitCodeFor(err: unknown): number {
  if (!(err instanceof CairnError)) return 1;
  switch (err.code) {
    case 'REPO_NOT_FOUND':
      return 10;
    case 'LOCKED':
      return 11;
    case 'WRONG_PASSWORD':
      return 12;
    case 'PARTIAL':
      return 3;
    case 'INTERRUPTED':
      return 130;
    default:
      return 1;
  }
}

/**
 * What an error from the file system says when it failed for want of room (a full file system, or
 * the user's disk quota), or null. Writes that fail so would all fail alike: callers stop at the
 * first (`NO_SPACE`) rather than report each.
 */
export function noSpace(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOSPC' ? 'no space left on device' : code === 'EDQUOT' ? 'disk quota exceeded' : null;
}

/**
 * Why every later write to the file system that gave `err` would fail as this one did, or null:
 * it is full or over the quota (`NO_SPACE`, see noSpace), read-only (EROFS: mounted so, or made
 * read-only by the kernel after errors) or no longer connected (ENOTCONN: a FUSE or network mount
 * whose server went away), both `UNWRITABLE`. A restore stops at the first such write rather than
 * report every file after it.
 */
export function writesStop(err: unknown): { code: 'NO_SPACE' | 'UNWRITABLE'; why: string } | null {
  const full = noSpace(err);
  if (full) return { code: 'NO_SPACE', why: full };
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'EROFS') return { code: 'UNWRITABLE', why: 'read-only file system' };
  if (code === 'ENOTCONN') return { code: 'UNWRITABLE', why: 'the file system is no longer connected' };
  return null;
}

export function isNotFound(err: unknown): boolean {
  return err instanceof CairnError && err.code === 'NOT_FOUND';
}
