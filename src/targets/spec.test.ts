import { describe, expect, it } from 'vitest';
import { expired, formatTimestamp, parseTimestamp } from './retention.js';
import { archiveTargetSchema, mirrorTargetSchema, parseAge, parseDestination, parseTargetSpec, targetSpecSchema } from './spec.js';

describe('parseAge', () => {
  it('reads hours, days, weeks, months and years', () => {
    expect(parseAge('1h')).toBe(3_600_000);
    expect(parseAge('7d')).toBe(7 * 86_400_000);
    expect(parseAge('2w')).toBe(14 * 86_400_000);
    expect(parseAge('6m')).toBe(180 * 86_400_000);
    expect(parseAge('1y')).toBe(365 * 86_400_000);
  });

  it('rejects anything else with a hint', () => {
    for (const bad of ['', '7', 'd', '0d', '-1d', '1.5d', '7 days', '1s']) expect(() => parseAge(bad)).toThrow(/invalid age .*use a positive number and a unit/);
  });
});

describe('target specs', () => {
  it('parses archive and mirror targets to folders and S3 prefixes', () => {
    expect(parseTargetSpec('archive:/srv/copies')).toEqual({ kind: 'archive', dest: '/srv/copies', codec: 'gzip' });
    expect(parseTargetSpec('archive:s3:http://127.0.0.1:9000/bucket/a/b', 'zstd')).toEqual({ kind: 'archive', dest: 's3:http://127.0.0.1:9000/bucket/a/b', codec: 'zstd' });
    expect(parseTargetSpec('mirror:./rel/dir')).toEqual({ kind: 'mirror', dest: './rel/dir' });
    expect(parseTargetSpec('mirror:s3:s3.amazonaws.com/bucket')).toEqual({ kind: 'mirror', dest: 's3:s3.amazonaws.com/bucket' });
  });

  it('rejects unknown kinds, empty destinations, bucketless URLs and URLs with credentials', () => {
    expect(() => parseTargetSpec('ftp:/x')).toThrow(/unknown target/);
    expect(() => parseTargetSpec('archive:')).toThrow(/archive: needs a destination/);
    expect(() => parseTargetSpec('mirror:s3:http://host:9000/')).toThrow(/needs a bucket/);
    expect(() => parseTargetSpec('mirror:s3:http://key:secret@host/b')).toThrow(/must not hold credentials/);
    expect(() => parseTargetSpec('mirror:s3:http://key:secret@host/b')).not.toThrow(/secret/);
    expect(targetSpecSchema.safeParse('archive:/x').success).toBe(true);
    const bad = targetSpecSchema.safeParse('nope:/x');
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0].message).toMatch(/unknown target/);
  });

  it('splits S3 destinations into endpoint, bucket and prefix', () => {
    expect(parseDestination('s3:http://127.0.0.1:9000/bucket/a/b/')).toEqual({ type: 's3', endpoint: 'http://127.0.0.1:9000', bucket: 'bucket', prefix: 'a/b' });
    expect(parseDestination('s3:s3.eu-west-1.amazonaws.com/bucket')).toEqual({ type: 's3', endpoint: 'https://s3.eu-west-1.amazonaws.com', bucket: 'bucket', prefix: '' });
    expect(parseDestination('/srv/x')).toEqual({ type: 'folder', path: '/srv/x' });
  });

  it('validates whole target configurations', () => {
    expect(archiveTargetSchema.safeParse({ kind: 'archive', dest: '/x', codec: 'zip', keep: { age: '7d', count: 3 } }).success).toBe(true);
    expect(archiveTargetSchema.safeParse({ kind: 'archive', dest: '/x', codec: 'lz4' }).success).toBe(false);
    expect(archiveTargetSchema.safeParse({ kind: 'archive', dest: '/x', codec: 'gzip', keep: { age: '7 days' } }).success).toBe(false);
    expect(mirrorTargetSchema.safeParse({ kind: 'mirror', dest: 's3:http://h/b', trash: { keep: { count: 5 } } }).success).toBe(true);
    expect(mirrorTargetSchema.safeParse({ kind: 'mirror', dest: 's3:http://h/' }).success).toBe(false);
  });
});

describe('retention', () => {
  const now = new Date('2026-11-24T08:00:00Z');
  const items = [0, 1, 2, 5, 30].map((d) => ({ name: `n${d}`, time: new Date(now.getTime() - d * 86_400_000) }));
  const names = (keep: Parameters<typeof expired>[1], protect: string[] = []) => expired(items, keep, now, new Set(protect)).map((i) => i.name);

  it('keeps the union of the newest count and those younger than age', () => {
    expect(names(undefined)).toEqual([]);
    expect(names({})).toEqual([]);
    expect(names({ count: 2 })).toEqual(['n2', 'n5', 'n30']);
    expect(names({ age: '3d' })).toEqual(['n5', 'n30']);
    expect(names({ age: '1d', count: 3 })).toEqual(['n5', 'n30']);
    expect(names({ count: 1 }, ['n30'])).toEqual(['n1', 'n2', 'n5']);
  });

  it('writes sortable UTC timestamps and reads them back', () => {
    const d = new Date('2026-01-02T03:04:05.678Z');
    expect(formatTimestamp(d)).toBe('2026-01-02T03-04-05Z');
    expect(parseTimestamp('2026-01-02T03-04-05Z').toISOString()).toBe('2026-01-02T03:04:05.000Z');
  });
});
