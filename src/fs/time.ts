import { CairnError } from '../errors.js';

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
 * Go's time.Time JSON encoding: RFC 3339 with nanoseconds, trailing zeros of the fraction trimmed,
 * the zone as `Z` or `±hh:mm`. restic writes local time, so the default offset is the machine's at
 * that instant.
 */
export function formatTime(ns: bigint, offsetMinutes?: number): string {
  let sec = ns / 1_000_000_000n;
  let frac = ns - sec * 1_000_000_000n;
  if (frac < 0n) {
    frac += 1_000_000_000n;
    sec -= 1n;
  }
  const ms = Number(sec) * 1000;
  const off = offsetMinutes ?? localOffset(ms);
  const d = new Date(ms + off * 60_000);
  const year = d.getUTCFullYear();
  let s = year >= 0 && year <= 9999 ? d.toISOString().slice(0, 19) : `${pad(year, 4)}${d.toISOString().slice(-20, -5)}`;
  if (frac !== 0n) s += `.${frac.toString().padStart(9, '0').replace(/0+$/, '')}`;
  if (off === 0) return `${s}Z`;
  const a = Math.abs(off);
  return `${s}${off < 0 ? '-' : '+'}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Nanoseconds since the epoch of an RFC 3339 time (any fraction length, `Z` or an offset). */
export function parseTime(s: string): bigint {
  const m = RFC3339.exec(s);
  if (!m) throw new CairnError('BAD_INPUT', `invalid time ${JSON.stringify(s)}: expected RFC 3339`);
  const secs = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]) / 1000;
  const offset = m[8] ? 0 : (m[9] === '-' ? -1 : 1) * (+m[10] * 60 + +m[11]);
  const frac = m[7] ? BigInt(m[7].padEnd(9, '0')) : 0n;
  return (BigInt(secs) - BigInt(offset * 60)) * 1_000_000_000n + frac;
}
