import { CairnError } from '../errors.js';

const NS = 1_000_000_000n;

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** The local offset in minutes at an instant, cached per hour: offsets only change on hour boundaries. */
const offsets = new Map<number, number>();
function localOffset(ms: number): number {
  const hour = Math.floor(ms / 3_600_000);
  let off = offsets.get(hour);
  if (off === undefined) {
    off = -new Date(hour * 3_600_000).getTimezoneOffset();
    if (offsets.size > 4096) offsets.clear();
    offsets.set(hour, off);
  }
  return off;
}

/**
 * "YYYY-MM-DDTHH:MM:SS" and the zone of a whole second at an offset, cached: the files of a tree
 * share few seconds, and a backup formats three times per file.
 */
const seconds = new Map<number, { base: string; zone: string }>();
function secondText(sec: number, off: number): { base: string; zone: string } {
  const cacheable = Math.abs(sec) < 2 ** 40;
  const key = sec * 4096 + off;
  let t = cacheable ? seconds.get(key) : undefined;
  if (t) return t;
  const d = new Date((sec + off * 60) * 1000);
  const year = d.getUTCFullYear();
  const base = year >= 0 && year <= 9999 ? d.toISOString().slice(0, 19) : `${pad(year, 4)}${d.toISOString().slice(-20, -5)}`;
  const a = Math.abs(off);
  t = { base, zone: off === 0 ? 'Z' : `${off < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}` };
  if (cacheable) {
    if (seconds.size >= 4096) seconds.clear();
    seconds.set(key, t);
  }
  return t;
}

/**
 * Go's time.Time JSON encoding: RFC 3339 with nanoseconds, trailing zeros of the fraction trimmed,
 * the zone as `Z` or `±hh:mm`. restic writes local time, so the default offset is the machine's at
 * that instant.
 */
export function formatTime(ns: bigint, offsetMinutes?: number): string {
  let sec = ns / NS;
  let frac = Number(ns - sec * NS);
  if (frac < 0) {
    frac += 1_000_000_000;
    sec -= 1n;
  }
  const s = Number(sec);
  const { base, zone } = secondText(s, offsetMinutes ?? localOffset(s * 1000));
  if (frac === 0) return base + zone;
  let digits = String(frac).padStart(9, '0');
  let end = 9;
  while (digits.charCodeAt(end - 1) === 48) end--;
  if (end < 9) digits = digits.slice(0, end);
  return `${base}.${digits}${zone}`;
}

/** The value of the `n` decimal digits of `s` at `at`, or -1 when one is not a digit. */
function digitsAt(s: string, at: number, n: number): number {
  let v = 0;
  for (let i = at; i < at + n; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** Nanoseconds since the epoch as whole seconds (rounded down, also before 1970) and the nanoseconds past them. */
export function splitNs(ns: bigint): { seconds: bigint; nanoseconds: number } {
  const seconds = ns / NS - (ns < 0n && ns % NS !== 0n ? 1n : 0n);
  return { seconds, nanoseconds: Number(ns - seconds * NS) };
}

/** parseTime, or `fallback` for text that is not a time. */
export function parseTimeOr(s: string, fallback: bigint): bigint {
  try {
    return parseTime(s);
  } catch {
    return fallback;
  }
}

/** Nanoseconds since the epoch of an RFC 3339 time (any fraction length up to 9, `Z` or an offset). */
export function parseTime(s: string): bigint {
  if (!parseParts(s)) throw new CairnError('BAD_INPUT', `invalid time ${JSON.stringify(s)}: expected RFC 3339`);
  return BigInt(parsedSeconds) * NS + BigInt(parsedNanos);
}

/**
 * Whether RFC 3339 `s` is the instant whose nanoseconds since the epoch, as a 64-bit integer,
 * have the 32-bit halves `hi` (signed) and `lo` (unsigned): the backup compares three times per
 * file with its parent's, and this needs no BigInt. False for text that is not a time.
 */
export function timeIsNs(s: string, hi: number, lo: number): boolean {
  if (!parseParts(s)) return false;
  const secs = parsedSeconds;
  const nanos = parsedNanos;
  // Before 1970 (rare): the exact way.
  if (secs < 0) return BigInt(secs) * NS + BigInt(nanos) === (BigInt(hi) << 32n) + BigInt(lo);
  // secs * 1e9 + nanos exceeds 2^53: split secs at 2^16 so that every product and sum is exact.
  const secsHi = Math.floor(secs / 65536);
  const x = secsHi * 1e9;
  const xHi = Math.floor(x / 65536);
  const z = (x - xHi * 65536) * 65536 + (secs - secsHi * 65536) * 1e9 + nanos;
  return xHi + Math.floor(z / 4294967296) === hi && z % 4294967296 === lo;
}

/** What the last successful `parseParts` read: whole seconds since the epoch, and nanoseconds. */
let parsedSeconds = 0;
let parsedNanos = 0;

/**
 * Reads YYYY-MM-DD[Tt]HH:MM:SS[.F{1,9}](Z|z|±HH:MM) without a regular expression (trees hold three
 * per node) into parsedSeconds and parsedNanos; false when `s` is not such a time.
 */
function parseParts(s: string): boolean {
  if (typeof s !== 'string' || s.length < 20 || s[4] !== '-' || s[7] !== '-' || (s[10] !== 'T' && s[10] !== 't') || s[13] !== ':' || s[16] !== ':') return false;
  const year = digitsAt(s, 0, 4);
  const month = digitsAt(s, 5, 2);
  const day = digitsAt(s, 8, 2);
  const hour = digitsAt(s, 11, 2);
  const minute = digitsAt(s, 14, 2);
  const second = digitsAt(s, 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0) return false;
  let i = 19;
  let frac = 0;
  if (s[i] === '.') {
    const start = ++i;
    while (i < s.length && i - start < 10 && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) frac = frac * 10 + (s.charCodeAt(i++) - 48);
    const n = i - start;
    if (n === 0 || n > 9) return false;
    frac *= 10 ** (9 - n);
  }
  let offset: number;
  if ((s[i] === 'Z' || s[i] === 'z') && i + 1 === s.length) offset = 0;
  else if ((s[i] === '+' || s[i] === '-') && i + 6 === s.length && s[i + 3] === ':') {
    const h = digitsAt(s, i + 1, 2);
    const m = digitsAt(s, i + 4, 2);
    if (h < 0 || m < 0) return false;
    offset = (s[i] === '-' ? -1 : 1) * (h * 60 + m);
  } else return false;
  if (month < 1 || month > 12) return false;
  parsedSeconds = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset * 60;
  parsedNanos = frac;
  return true;
}

/**
 * Days from 1970-01-01 to a date of the proleptic Gregorian calendar (year >= 0), in integer
 * arithmetic (H. Hinnant's days_from_civil): a day past the month's end runs on into the next, as
 * Date.UTC has it, at a fraction of its cost.
 */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

/** restic's time flags: a date, or a date with hours and minutes (and seconds), in local time. */
export function parseLocalTime(s: string, flag: string): bigint {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?: (\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(s.trim());
  const d = m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)) : null;
  if (!m || !d || d.getDate() !== Number(m[3]) || d.getMonth() !== Number(m[2]) - 1 || Number(m[4] ?? 0) > 23 || Number(m[5] ?? 0) > 59 || Number(m[6] ?? 0) > 59) {
    throw new CairnError('BAD_INPUT', `invalid ${flag} ${JSON.stringify(s)}: use 2006-01-02, 2006-01-02 15:04 or 2006-01-02 15:04:05`);
  }
  return BigInt(d.getTime()) * 1_000_000n;
}
