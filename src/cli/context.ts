import { CairnError } from '../errors.js';
import { passwordFileCandidates, readPasswordCommand, readPasswordFile } from '../util/secret-file.js';
import type { Backend } from '../backend/backend.js';
import { openBackend, parseBackendOptions } from '../backend/location.js';
import { DryRunBackend } from '../backend/dry-run.js';
import { parseRateLimit, Throttle, ThrottledBackend } from '../backend/throttle.js';
import { parseCompressionMode } from '../compress/zstd.js';
import { defaultCacheDir, LocalCache } from '../repository/cache.js';
import { Repository, type OpenOptions } from '../repository/repository.js';
import { Lock } from '../repository/lock.js';
import { WorkerPool } from '../repository/worker-pool.js';
import { createProgress, type ProgressReporter } from './progress.js';

/** Options every command understands, as restic spells them. */
export interface GlobalOptions {
  repo?: string;
  passwordFile?: string;
  passwordCommand?: string;
  json?: boolean;
  quiet?: boolean;
  compression?: string;
  noLock?: boolean;
  /** `--cache-dir`, and `--no-cache` (see cache.ts). */
  cacheDir?: string;
  noCache?: boolean;
  /** `-o backend.name=value`, as often as given. */
  option?: string[];
  /** `--retry-lock DURATION`: wait this long for a lock another client holds. */
  retryLock?: string;
  /** `-v` given this many times (`-vv`: 2). */
  verbose?: number;
  /** `--limit-upload` / `--limit-download`, KiB/s. */
  limitUpload?: string;
  limitDownload?: string;
}

/** The first pause before trying a held lock again, doubled each time up to the second. */
const LOCK_RETRY_FIRST_MS = 1000;
const LOCK_RETRY_MAX_MS = 60_000;

/** A duration as Go's time.ParseDuration reads it (what restic's --retry-lock takes): `30s`, `5m`, `1h30m`, `1.5h`, `500ms`. */
export function parseGoDuration(s: string, flag: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;
  let ms = 0;
  let at = 0;
  const text = s.trim();
  while (at < text.length) {
    part.lastIndex = at;
    const m = part.exec(text);
    if (!m) break;
    ms += Number(m[1]) * units[m[2]];
    at = part.lastIndex;
  }
  if (text === '' || at !== text.length || !Number.isFinite(ms)) throw new CairnError('BAD_INPUT', `invalid ${flag} ${JSON.stringify(s)}: use a duration such as 30s, 5m or 1h30m`);
  return ms;
}

export class Context {
  readonly opts: GlobalOptions;
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
  readonly signal: AbortSignal;
  #cleanups: (() => Promise<void>)[] = [];
  #localCache: LocalCache | undefined;

  constructor(opts: GlobalOptions, signal: AbortSignal, out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr) {
    this.opts = opts;
    this.signal = signal;
    this.out = out;
    this.err = err;
  }

  /** A line for a person: not with --quiet, and not with --json, whose output is JSON lines alone. */
  print(line: string): void {
    if (!this.opts.quiet && !this.opts.json) this.out.write(`${line}\n`);
  }

  /** Always printed, even with --quiet: the output the command exists for (JSON, file lists). */
  write(text: string | Uint8Array): void {
    this.out.write(text);
  }

  json(value: unknown): void {
    this.out.write(`${JSON.stringify(value)}\n`);
  }

  warn(line: string): void {
    if (this.opts.json) return;
    this.err.write(`${line}\n`);
  }

  /** How progress is shown: a status line on a terminal, JSON lines with --json, else nothing. */
  progressMode(): 'tty' | 'json' | 'none' {
    if (this.opts.quiet) return 'none';
    if (this.opts.json) return 'json';
    return (this.err as NodeJS.WriteStream).isTTY ? 'tty' : 'none';
  }

  progress(): ProgressReporter {
    const mode = this.progressMode();
    return createProgress(mode, mode === 'json' ? { out: this.out } : { err: this.err });
  }

  repoLocation(): string {
    const loc = this.opts.repo ?? process.env.CAIRN_REPOSITORY ?? process.env.RESTIC_REPOSITORY;
    if (!loc) throw new CairnError('BAD_INPUT', 'no repository given: use -r/--repo or set CAIRN_REPOSITORY');
    return loc;
  }

  /** The password, from --password-file, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD (restic's variables too). */
  async password(): Promise<string> {
    return (await this.#passwords()).passwords[0];
  }

  /**
   * The passwords to try, best first: a password file stands for restic's reading of it and, when
   * that differs, for its first line as earlier versions of Cairn read it (see passwordFileCandidates);
   * `legacyFile` names the file when there is such a second reading.
   */
  async #passwords(): Promise<{ passwords: string[]; legacyFile?: string }> {
    const file = this.opts.passwordFile ?? process.env.CAIRN_PASSWORD_FILE ?? process.env.RESTIC_PASSWORD_FILE;
    const command = this.opts.passwordCommand ?? process.env.CAIRN_PASSWORD_COMMAND ?? process.env.RESTIC_PASSWORD_COMMAND;
    if (file && command) throw new CairnError('BAD_INPUT', 'a password file and a password command cannot both be given (--password-file / --password-command and their variables)');
    if (command) return { passwords: [readPasswordCommand(command)] };
    if (file) return { passwords: passwordFileCandidates(file), legacyFile: file };
    const env = process.env.CAIRN_PASSWORD ?? process.env.RESTIC_PASSWORD;
    if (env !== undefined) return { passwords: [env] };
    if (process.stdin.isTTY) return { passwords: [await readHidden('enter password for repository: ', this.err)] };
    throw new CairnError('BAD_INPUT', 'no password given: use --password-file, --password-command, CAIRN_PASSWORD_FILE, CAIRN_PASSWORD_COMMAND or CAIRN_PASSWORD');
  }

  /** Opens a repository with the first of the passwords that opens a key, and says so when only the old reading of a file did. */
  async #open(backend: Backend, p: { passwords: string[]; legacyFile?: string }, opts: OpenOptions): Promise<Repository> {
    const { repo, which } = await Repository.openWithAny(backend, p.passwords, opts);
    if (which > 0 && p.legacyFile) {
      this.warn(
        `Warning: only the first line of ${p.legacyFile}, spaces kept, opens this repository (earlier versions of Cairn read password files that way); ` +
          'restic reads the whole file with the spaces around it trimmed, and so does Cairn now: give the key that password with "cairn key passwd --new-password-file FILE"',
      );
    }
    return repo;
  }

  /**
   * A password for a new repository or key: from the usual options, or typed twice on a terminal,
   * since a mistyped password at this point makes the repository unreadable for good.
   */
  async newPassword(file?: string): Promise<string> {
    if (file) return readPasswordFile(file);
    const configured =
      this.opts.passwordFile ??
      this.opts.passwordCommand ??
      process.env.CAIRN_PASSWORD_FILE ??
      process.env.RESTIC_PASSWORD_FILE ??
      process.env.CAIRN_PASSWORD_COMMAND ??
      process.env.RESTIC_PASSWORD_COMMAND ??
      process.env.CAIRN_PASSWORD ??
      process.env.RESTIC_PASSWORD;
    if (configured !== undefined || !process.stdin.isTTY) return this.password();
    const first = await readHidden('enter password for new repository: ', this.err);
    const second = await readHidden('enter password again: ', this.err);
    if (first !== second) throw new CairnError('BAD_INPUT', 'the passwords do not match');
    return first;
  }

  /** The local cache (see repository/cache.ts), unless --no-cache; its warnings go to stderr. */
  localCache(): LocalCache | undefined {
    if (this.opts.noCache) return undefined;
    this.#localCache ??= new LocalCache(this.opts.cacheDir ?? defaultCacheDir(), (line) => this.warn(`Warning: ${line}`));
    return this.#localCache;
  }

  /** The repository's backend, with the `-o` options. */
  backend(): Backend {
    return this.#limited(openBackend(this.repoLocation(), parseBackendOptions(this.opts.option ?? [])));
  }

  /** The backend under --limit-upload / --limit-download, when given (one pair of rates for every backend of the command). */
  #limited(backend: Backend): Backend {
    const { limitUpload, limitDownload } = this.opts;
    if (limitUpload === undefined && limitDownload === undefined) return backend;
    this.#throttles ??= {
      upload: limitUpload === undefined ? undefined : new Throttle(parseRateLimit(limitUpload, '--limit-upload'), undefined, this.signal),
      download: limitDownload === undefined ? undefined : new Throttle(parseRateLimit(limitDownload, '--limit-download'), undefined, this.signal),
    };
    return new ThrottledBackend(backend, this.#throttles);
  }

  #throttles?: { upload?: Throttle; download?: Throttle };

  /**
   * The repository of -r. `dryRun`: writes go nowhere (see DryRunBackend), and the local cache is
   * neither read nor written, so nothing of the run is kept anywhere.
   */
  async openRepository(opts: { dryRun?: boolean } = {}): Promise<Repository> {
    const backend = opts.dryRun ? new DryRunBackend(this.backend()) : this.backend();
    const compression = this.opts.compression ? parseCompressionMode(this.opts.compression) : undefined;
    try {
      const repo = await this.#open(backend, await this.#passwords(), { compression, cache: opts.dryRun ? undefined : this.localCache() });
      this.#cleanups.push(() => repo.close());
      return repo;
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  /**
   * A second repository (the source of `copy`), with its own password: from `passwordFile`,
   * CAIRN_FROM_PASSWORD_FILE or CAIRN_FROM_PASSWORD (restic's RESTIC_FROM_* too), or typed on a terminal.
   */
  async openOtherRepository(location: string, passwordFile?: string, passwordCommand?: string): Promise<Repository> {
    const file = passwordFile ?? process.env.CAIRN_FROM_PASSWORD_FILE ?? process.env.RESTIC_FROM_PASSWORD_FILE;
    const command = passwordCommand ?? process.env.CAIRN_FROM_PASSWORD_COMMAND ?? process.env.RESTIC_FROM_PASSWORD_COMMAND;
    if (file && command) throw new CairnError('BAD_INPUT', 'a password file and a password command for the source repository cannot both be given');
    let p: { passwords: string[]; legacyFile?: string };
    if (command) {
      p = { passwords: [readPasswordCommand(command, '--from-password-command')] };
    } else if (file) {
      p = { passwords: passwordFileCandidates(file), legacyFile: file };
    } else if ((process.env.CAIRN_FROM_PASSWORD ?? process.env.RESTIC_FROM_PASSWORD) !== undefined) {
      p = { passwords: [(process.env.CAIRN_FROM_PASSWORD ?? process.env.RESTIC_FROM_PASSWORD)!] };
    } else if (process.stdin.isTTY) {
      p = { passwords: [await readHidden('enter password for source repository: ', this.err)] };
    } else {
      throw new CairnError('BAD_INPUT', 'no password for the source repository: use --from-password-file, --from-password-command, CAIRN_FROM_PASSWORD_FILE, CAIRN_FROM_PASSWORD_COMMAND or CAIRN_FROM_PASSWORD');
    }
    const backend = this.#limited(openBackend(location, parseBackendOptions(this.opts.option ?? [])));
    try {
      const repo = await this.#open(backend, p, { cache: this.localCache() });
      this.#cleanups.push(() => repo.close());
      return repo;
    } catch (err) {
      await backend.close();
      throw err;
    }
  }

  /**
   * Locks the repository. With `overlap`, returns once our lock file is written and lets the
   * caller read and compute while the lock settles (restic's wait and look again, 200 ms); the
   * repository holds writes until then, and the caller awaits `confirmed` before it reports
   * anything or touches anything outside the repository (it rejects with LOCKED when a racing
   * client holds the repository).
   */
  async lock(repo: Repository, exclusive: boolean, opts: { overlap?: boolean } = {}): Promise<{ confirmed: Promise<void> }> {
    if (this.opts.noLock) return { confirmed: Promise.resolve() };
    const retryFor = this.opts.retryLock === undefined ? 0 : parseGoDuration(this.opts.retryLock, '--retry-lock');
    const deadline = Date.now() + retryFor;
    for (let wait = LOCK_RETRY_FIRST_MS; ; wait = Math.min(wait * 2, LOCK_RETRY_MAX_MS)) {
      try {
        const lock = await Lock.begin(repo, exclusive);
        this.#cleanups.unshift(() => lock.release());
        if (!opts.overlap) await lock.confirmed;
        else repo.gateWrites(lock.confirmed);
        return { confirmed: lock.confirmed };
      } catch (err) {
        // --retry-lock: a lock held by another client is waited for, with growing pauses, until
        // the time is up (then the last refusal stands: exit 11).
        const left = deadline - Date.now();
        if (!(err instanceof CairnError && err.code === 'LOCKED') || left <= 0) throw err;
        if (!this.opts.quiet && !this.opts.json) this.err.write(`repository is already locked, trying again in ${Math.ceil(Math.min(wait, left) / 1000)} s\n`);
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(resolve, Math.min(wait, left));
          this.signal.addEventListener('abort', () => {
            clearTimeout(t);
            reject(new CairnError('INTERRUPTED', 'interrupted while waiting for the lock'));
          }, { once: true });
        });
      }
    }
  }

  pool(repo: Repository): WorkerPool {
    const pool = new WorkerPool(repo);
    this.#cleanups.unshift(() => pool.close());
    return pool;
  }

  /** Releases locks, workers and backends in reverse order of acquisition. */
  async close(): Promise<void> {
    const c = this.#cleanups;
    this.#cleanups = [];
    for (const fn of c) {
      try {
        await fn();
      } catch {
        // Cleanup is best effort: a stale lock or an open handle must not hide the real result.
      }
    }
  }
}

/** Typed input that arrived after the line a prompt wanted (two answers can come in one read). */
let pendingInput = '';

async function readHidden(prompt: string, err: NodeJS.WritableStream): Promise<string> {
  err.write(prompt);
  const stdin = process.stdin;
  let s = '';
  const take = (text: string): boolean => {
    for (let i = 0; i < text.length; i++) {
      const ch = text[i];
      if (ch === '\r' || ch === '\n') {
        pendingInput = text.slice(i + (ch === '\r' && text[i + 1] === '\n' ? 2 : 1));
        return true;
      }
      if (ch === '\u0003') throw new CairnError('INTERRUPTED', 'interrupted');
      if (ch === '\u007f') s = s.slice(0, -1);
      else s += ch;
    }
    return false;
  };
  const leftover = pendingInput;
  pendingInput = '';
  if (take(leftover)) {
    err.write('\n');
    return s;
  }
  stdin.setRawMode?.(true);
  stdin.resume();
  try {
    for await (const chunk of stdin) if (take((chunk as Buffer).toString('utf8'))) return s;
    return s;
  } finally {
    stdin.setRawMode?.(false);
    stdin.pause();
    err.write('\n');
  }
}
