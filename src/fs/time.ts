import { CairnError } from '../errors.js';

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/**
 * Go's time.Time JSON encoding: RFC 3339 with nanoseconds, trailing zeros of the fraction trimmed,
 * the zone as `Z` or `±hh:mm`. restic writes local time, so the default offset is the machine's at
 * that instant.
 */
export function formatTime(ns: bigint, offsetMinutes?: number): string {
  const ms = Number(ns / 1_000_000n) - (ns < 0n && ns % 1_000_000n !== 0n ? 1 : 0);
  let frac = ns % 1_000_000_000n;
  if (frac < 0n) frac += 1_000_000_000n;
  const off = offsetMinutes ?? -new Date(ms).getTimezoneOffset();
  const d = new Date(Math.floor(ms / 1000) * 1000 + off * 60_000);
  let s = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
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
