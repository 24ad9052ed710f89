import { CairnError } from '../errors.js';
import { parseTime } from '../fs/time.js';
import type { Snapshot } from '../repository/snapshot.js';

/** restic's duration: years, months, days and hours, written like `1y2m3d4h`. */
export interface Duration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

export function parseDuration(s: string): Duration {
  const d: Duration = { years: 0, months: 0, days: 0, hours: 0 };
  const re = /(\d+)([ymdh])/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(s)) !== null) {
    const n = Number(m[1]);
    if (m[2] === 'y') d.years += n;
    else if (m[2] === 'm') d.months += n;
    else if (m[2] === 'd') d.days += n;
    else d.hours += n;
    end = re.lastIndex;
  }
  if (s.length === 0 || end !== s.length) throw new CairnError('BAD_INPUT', `invalid duration ${JSON.stringify(s)}: write it like 1y2m3d4h`);
  return d;
}

export function formatDuration(d: Duration): string {
  return `${d.years ? `${d.years}y` : ''}${d.months ? `${d.months}m` : ''}${d.days ? `${d.days}d` : ''}${d.hours ? `${d.hours}h` : ''}` || '0h';
}

function isZero(d: Duration | undefined): boolean {
  return !d || (d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0);
}

/** A retention policy, as restic's forget flags spell it; counts of -1 mean "all". */
export interface Policy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  within?: Duration;
  withinHourly?: Duration;
  withinDaily?: Duration;
  withinWeekly?: Duration;
  withinMonthly?: Duration;
  withinYearly?: Duration;
  /** Keep snapshots that have all tags of any one of these lists. */
  tags?: string[][];
}

export function policyIsEmpty(p: Policy): boolean {
  const counts = [p.last, p.hourly, p.daily, p.weekly, p.monthly, p.yearly].every((c) => !c);
  const durations = [p.within, p.withinHourly, p.withinDaily, p.withinWeekly, p.withinMonthly, p.withinYearly].every(isZero);
  return counts && durations && (p.tags ?? []).length === 0;
}

/**
 * A snapshot's wall-clock fields in the zone its time was written in: Go keeps that zone, and
 * restic's buckets (hour, day, ISO week, month, year) are computed in it.
 */
interface LocalTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  /** Nanoseconds since the epoch. */
  ns: bigint;
  /** The local fields as if they were UTC, in milliseconds; used for calendar arithmetic. */
  localMs: number;
  offsetMin: number;
}

function localTime(s: string): LocalTime {
  const ns = parseTime(s);
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/.exec(s)!;
  const offsetMin = m[7] ? (m[7] === '-' ? -1 : 1) * (Number(m[8]) * 60 + Number(m[9])) : 0;
  return {
    year: Number(m[1]),
    month: Number(m[2]),
    day: Number(m[3]),
    hour: Number(m[4]),
    ns,
    localMs: Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])),
    offsetMin,
  };
}

function isoWeek(t: LocalTime): number {
  const d = new Date(Date.UTC(t.year, t.month - 1, t.day));
  const dow = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - dow);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
  return d.getUTCFullYear() * 100 + week;
}

const BUCKERS: Record<'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly', (t: LocalTime) => number> = {
  hourly: (t) => t.year * 1_000_000 + t.month * 10_000 + t.day * 100 + t.hour,
  daily: (t) => t.year * 10_000 + t.month * 100 + t.day,
  weekly: isoWeek,
  monthly: (t) => t.year * 100 + t.month,
  yearly: (t) => t.year,
};

/** `latest` minus a duration, as Go's AddDate (calendar, normalising overflow) then hours. */
function cutoff(latest: LocalTime, d: Duration): bigint {
  const l = new Date(latest.localMs);
  const shifted = Date.UTC(l.getUTCFullYear() - d.years, l.getUTCMonth() - d.months, l.getUTCDate() - d.days, l.getUTCHours(), l.getUTCMinutes(), l.getUTCSeconds());
  const frac = latest.ns % 1_000_000_000n;
  return (BigInt(shifted - latest.offsetMin * 60_000) * 1_000_000n + frac) - BigInt(d.hours) * 3_600_000_000_000n;
}

export interface KeepReason {
  snapshot: Snapshot;
  matches: string[];
  counters: { last?: number; hourly?: number; daily?: number; weekly?: number; monthly?: number; yearly?: number };
}

/**
 * restic's ApplyPolicy: newest first, every snapshot is kept when any rule wants it (a tag list,
 * `within`, a bucket that still has count left and sees a new hour/day/week/month/year, or a
 * `within-*` bucket inside its window). Returns keep, remove and why each kept one stays.
 */
export function applyPolicy(list: Snapshot[], p: Policy, now = Date.now()): { keep: Snapshot[]; remove: Snapshot[]; reasons: KeepReason[] } {
  const sorted = [...list].sort((a, b) => {
    const ta = parseTime(a.time);
    const tb = parseTime(b.time);
    return ta > tb ? -1 : ta < tb ? 1 : 0;
  });
  if (policyIsEmpty(p)) {
    return { keep: sorted, remove: [], reasons: sorted.map((s) => ({ snapshot: s, matches: ['policy is empty'], counters: {} })) };
  }
  const keep: Snapshot[] = [];
  const remove: Snapshot[] = [];
  const reasons: KeepReason[] = [];
  if (sorted.length === 0) return { keep, remove, reasons };
  const times = sorted.map((s) => localTime(s.time));
  const nowNs = BigInt(now) * 1_000_000n;
  let latest: LocalTime | null = null;
  for (const t of times) if (t.ns < nowNs && (!latest || t.ns > latest.ns)) latest = t;
  latest ??= times[0];

  const buckets = [
    { count: p.last ?? 0, bucker: (_t: LocalTime, nr: number) => nr, last: -1, reason: 'last snapshot', key: 'last' as const },
    ...(['hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const).map((k) => ({ count: p[k] ?? 0, bucker: (t: LocalTime) => BUCKERS[k](t), last: -1, reason: `${k} snapshot`, key: k })),
  ];
  const within = (
    [
      ['hourly', p.withinHourly],
      ['daily', p.withinDaily],
      ['weekly', p.withinWeekly],
      ['monthly', p.withinMonthly],
      ['yearly', p.withinYearly],
    ] as const
  ).map(([k, d]) => ({ within: d, bucker: BUCKERS[k], last: -1, reason: `${k} within` }));

  sorted.forEach((cur, nr) => {
    const t = times[nr];
    const matches: string[] = [];
    for (const tags of p.tags ?? []) {
      if (tags.every((tag) => (cur.tags ?? []).includes(tag))) matches.push(`has tags [${tags.join(' ')}]`);
    }
    if (p.within && !isZero(p.within) && t.ns > cutoff(latest!, p.within)) matches.push(`within ${formatDuration(p.within)}`);
    for (const b of buckets) {
      if (b.count > 0 || b.count === -1) {
        const val = b.bucker(t, nr);
        if (val !== b.last) {
          b.last = val;
          if (b.count > 0) b.count--;
          matches.push(b.reason);
        }
      }
    }
    for (const b of within) {
      if (b.within && !isZero(b.within) && t.ns > cutoff(latest!, b.within)) {
        const val = b.bucker(t);
        if (val !== b.last) {
          b.last = val;
          matches.push(`${b.reason} ${formatDuration(b.within)}`);
        }
      }
    }
    if (matches.length > 0) {
      keep.push(cur);
      const counters: KeepReason['counters'] = {};
      for (const b of buckets) if (b.count) counters[b.key] = b.count;
      reasons.push({ snapshot: cur, matches, counters });
    } else remove.push(cur);
  });
  return { keep, remove, reasons };
}

export interface SnapshotGroup {
  host: string | null;
  paths: string[] | null;
  tags: string[] | null;
  snapshots: Snapshot[];
}

/** Groups snapshots by any of host, paths and tags, as restic's --group-by does. */
export function groupSnapshots(list: Snapshot[], groupBy: string): SnapshotGroup[] {
  const keys = groupBy.split(',').map((k) => k.trim()).filter(Boolean);
  for (const k of keys) if (!['host', 'paths', 'tags'].includes(k)) throw new CairnError('BAD_INPUT', `invalid --group-by ${JSON.stringify(groupBy)}: use host, paths and/or tags`);
  const groups = new Map<string, SnapshotGroup>();
  for (const s of list) {
    const g: SnapshotGroup = {
      host: keys.includes('host') ? (s.hostname ?? '') : null,
      paths: keys.includes('paths') ? [...s.paths].sort() : null,
      // As restic's group keys: sorted tags, and null (not []) for a snapshot without any.
      tags: keys.includes('tags') && (s.tags ?? []).length > 0 ? [...s.tags!].sort() : null,
      snapshots: [],
    };
    const k = JSON.stringify([g.host, g.paths, g.tags]);
    const existing = groups.get(k);
    if (existing) existing.snapshots.push(s);
    else {
      g.snapshots.push(s);
      groups.set(k, g);
    }
  }
  return [...groups.values()];
}
