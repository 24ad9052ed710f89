/**
 * Per-file errors that repeat: the same failure for every file (a target that refuses owners, say)
 * would print one line per file of a restore, tens of thousands, and bury anything else. The first
 * few of each kind print as they come; the rest are counted and summed up once at the end.
 */
export class RepeatedErrors {
  readonly #shown: number;
  readonly #counts = new Map<string, number>();

  constructor(shown = 10) {
    this.#shown = shown;
  }

  /** Counts `message`; true while fewer than `shown` of its kind have been seen. */
  show(message: string): boolean {
    const kind = kindOf(message);
    const n = (this.#counts.get(kind) ?? 0) + 1;
    this.#counts.set(kind, n);
    return n <= this.#shown;
  }

  /** One line for each kind seen more than `shown` times, saying how many more there were. */
  summary(): string[] {
    const out: string[] = [];
    for (const [kind, n] of this.#counts) {
      if (n <= this.#shown) continue;
      out.push(`the same error for ${n - this.#shown} more ${n - this.#shown === 1 ? 'file' : 'files'}: ${kind}${hintFor(kind)}`);
    }
    return out;
  }
}

/** A message without the paths that Node quotes in system errors ("EPERM: …, lchown '/t/a'"). */
function kindOf(message: string): string {
  return message.replace(/ ?'(?:[^'\\]|\\.)*'/g, '').replace(/ -> *$/, '');
}

function hintFor(kind: string): string {
  if (/\b(EPERM|EINVAL)\b.*\blchown\b/.test(kind)) {
    return ' (the target does not take these owners: NFS with root squashing, SMB and FAT file systems refuse them; --no-owner restores without setting owners)';
  }
  return '';
}
