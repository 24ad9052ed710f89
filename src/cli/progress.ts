/** A snapshot of how far a long operation (backup, restore, check) has come. */
export interface ProgressState {
  filesDone: number;
  bytesDone: number;
  filesTotal?: number;
  bytesTotal?: number;
  errors: number;
  current?: string;
  phase?: string;
}

/** Receives progress; `update` may be called far more often than anything is shown. */
export interface ProgressReporter {
  update(s: ProgressState): void;
  /** The final state; ends the display (the status line is cleared, a last JSON line written). */
  done(s: ProgressState): void;
}

const TTY_INTERVAL_MS = 100;
const JSON_INTERVAL_MS = 1000;
const MiB = 1024 * 1024;

/**
 * Creates a progress reporter. 'tty' keeps one status line on `err` (files, bytes, MiB/s, percentage and ETA
 * when totals are known, elapsed time), redrawn at most 10 times a second; 'json' writes restic-style
 * `{"message_type":"status",...}` lines to `out`, at most one a second plus one at the end; 'none' is silent.
 */
export function createProgress(
  mode: 'tty' | 'json' | 'none',
  opts: { out?: NodeJS.WritableStream; err?: NodeJS.WritableStream; now?: () => number } = {},
): ProgressReporter {
  const now = opts.now ?? Date.now;
  const start = now();
  if (mode === 'none') return { update: () => undefined, done: () => undefined };
  if (mode === 'json') {
    const out = opts.out ?? process.stdout;
    const write = (s: ProgressState): void => {
      out.write(`${JSON.stringify(jsonStatus(s, now() - start))}\n`);
    };
    return { ...throttled(now, JSON_INTERVAL_MS, write), done: write };
  }
  const err = opts.err ?? process.stderr;
  let drawn = false;
  const draw = (s: ProgressState): void => {
    const columns = (err as { columns?: unknown }).columns;
    err.write(`\r${statusLine(s, now() - start, typeof columns === 'number' ? columns - 1 : undefined)}\x1b[K`);
    drawn = true;
  };
  return {
    ...throttled(now, TTY_INTERVAL_MS, draw),
    done: () => {
      if (drawn) err.write('\r\x1b[K');
      drawn = false;
    },
  };
}

/** Passes on the first update and then at most one per interval; later ones in between are dropped. */
function throttled(now: () => number, intervalMs: number, emit: (s: ProgressState) => void): { update(s: ProgressState): void } {
  let last = -Infinity;
  return {
    update(s) {
      const t = now();
      if (t - last < intervalMs) return;
      last = t;
      emit(s);
    },
  };
}

/** Fraction done by bytes when their total is known, else by files (a check counts packs as files). */
function fractionDone(s: ProgressState): number | undefined {
  if (s.bytesTotal) return Math.min(1, s.bytesDone / s.bytesTotal);
  if (s.filesTotal) return Math.min(1, s.filesDone / s.filesTotal);
  return undefined;
}

/** Linear extrapolation from the rate so far; unknown until some work is done. */
function etaSeconds(s: ProgressState, elapsedMs: number): number | undefined {
  const f = fractionDone(s);
  if (f === undefined || f <= 0 || f >= 1) return undefined;
  return ((elapsedMs / 1000) * (1 - f)) / f;
}

function jsonStatus(s: ProgressState, elapsedMs: number): Record<string, unknown> {
  const eta = etaSeconds(s, elapsedMs);
  // restic omits zero-valued fields (Go's omitempty) except percent_done; consumers are used to that.
  const status: Record<string, unknown> = { message_type: 'status' };
  const put = (key: string, v: number | string[] | undefined): void => {
    if (v !== undefined && (Array.isArray(v) ? v.length > 0 : v !== 0)) status[key] = v;
  };
  put('seconds_elapsed', Math.floor(elapsedMs / 1000));
  put('seconds_remaining', eta === undefined ? undefined : Math.round(eta));
  status.percent_done = fractionDone(s) ?? 0;
  put('total_files', s.filesTotal);
  put('files_done', s.filesDone);
  put('total_bytes', s.bytesTotal);
  put('bytes_done', s.bytesDone);
  put('error_count', s.errors);
  put('current_files', s.current === undefined ? undefined : [s.current]);
  return status;
}

function statusLine(s: ProgressState, elapsedMs: number, width: number | undefined): string {
  const parts: string[] = [];
  const f = fractionDone(s);
  parts.push(`[${formatDuration(elapsedMs / 1000)}]${f === undefined ? '' : ` ${(f * 100).toFixed(2)}%`}`);
  if (s.phase) parts.push(`${s.phase}:`);
  parts.push(s.filesTotal ? `${s.filesDone} / ${s.filesTotal} files,` : `${s.filesDone} files,`);
  if (s.bytesDone > 0 || s.bytesTotal) {
    parts.push(s.bytesTotal ? `${formatBytes(s.bytesDone)} / ${formatBytes(s.bytesTotal)},` : `${formatBytes(s.bytesDone)},`);
    if (elapsedMs > 0) parts.push(`${(s.bytesDone / MiB / (elapsedMs / 1000)).toFixed(2)} MiB/s,`);
  }
  parts.push(`${s.errors} errors`);
  const eta = etaSeconds(s, elapsedMs);
  if (eta !== undefined) parts.push(`ETA ${formatDuration(eta)}`);
  let line = parts.join(' ');
  if (s.current) {
    // The current path goes last and loses its beginning first: a wrapped line could not be redrawn with \r.
    const room = width === undefined ? Infinity : width - line.length - 1;
    const cur = Array.from(s.current);
    if (room >= cur.length) line += ` ${s.current}`;
    else if (room >= 8) line += ` …${cur.slice(cur.length - room + 1).join('')}`;
  }
  if (width !== undefined) {
    const chars = Array.from(line);
    if (chars.length > width) line = chars.slice(0, Math.max(0, width)).join('');
  }
  return line;
}

const UNITS: [string, bigint][] = [
  ['TiB', 40n],
  ['GiB', 30n],
  ['MiB', 20n],
  ['KiB', 10n],
];

/**
 * Formats a byte count as restic does: "512 B", "1.234 GiB" (three decimals, binary units). Like restic a unit
 * is used only above its size, so exactly 1024 bytes is "1024 B".
 */
export function formatBytes(n: number): string {
  const c = BigInt(Math.max(0, Math.floor(n)));
  for (const [unit, shift] of UNITS) {
    if (c > 1n << shift) return `${fixed3(c, shift)} ${unit}`;
  }
  return `${c} B`;
}

/** c / 2^shift with three decimals, rounded half to even like Go's %.3f, exactly (no float error). */
function fixed3(c: bigint, shift: bigint): string {
  const scaled = c * 1000n;
  const divisor = 1n << shift;
  let q = scaled >> shift;
  const twice = (scaled - (q << shift)) * 2n;
  if (twice > divisor || (twice === divisor && q % 2n === 1n)) q++;
  const frac = (q % 1000n).toString().padStart(3, '0');
  return `${q / 1000n}.${frac}`;
}

/** Formats whole seconds as restic does: "2:03", or "1:02:03" from one hour on. */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.floor(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}
