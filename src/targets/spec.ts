import { z } from 'zod';
import { CairnError } from '../errors.js';

/** How long one unit of a shorthand age lasts, in milliseconds. Months and years are fixed lengths (30 and 365 days). */
const AGE_UNITS: Record<string, number> = {
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  m: 30 * 86_400_000,
  y: 365 * 86_400_000,
};
const AGE = /^(\d{1,6})([hdwmy])$/;

/**
 * Parses a shorthand age (`1h`, `7d`, `2w`, `6m`, `1y`) into milliseconds. `m` is months (30 days), never
 * minutes; `y` is 365 days. Throws BAD_INPUT for anything else.
 * @example parseAge('7d') === 7 * 24 * 3600 * 1000
 */
export function parseAge(age: string): number {
  const m = AGE.exec(age.trim());
  if (m === null || Number(m[1]) === 0) {
    throw new CairnError('BAD_INPUT', `invalid age ${JSON.stringify(age)}: use a positive number and a unit h, d, w, m (months) or y, as in 7d`);
  }
  return Number(m[1]) * AGE_UNITS[m[2]];
}

export const CODECS = ['gzip', 'zlib', 'brotli', 'zstd', 'zip'] as const;
export type Codec = (typeof CODECS)[number];

export const keepSchema = z
  .object({
    age: z
      .string()
      .refine((s) => AGE.test(s.trim()) && !/^0+[hdwmy]$/.test(s.trim()), { message: 'an age such as 1h, 7d, 6m or 1y' })
      .optional(),
    count: z.number().int().positive().optional(),
  })
  .strict();
/** What retention keeps: copies younger than `age` and the newest `count` copies (the union, as restic's --keep-within and --keep-last). */
export type Keep = z.infer<typeof keepSchema>;

/** Where a target writes: a local folder, or an S3 prefix. */
export type Destination = { type: 'folder'; path: string } | { type: 's3'; endpoint: string; bucket: string; prefix: string };

/**
 * Parses a target's destination: a folder path, or `s3:http(s)://host[:port]/bucket[/prefix]`, or restic's
 * `s3:host/bucket[/prefix]` (https). The prefix never starts or ends with `/`. Messages never echo more
 * than the scheme of a URL, which may hold credentials.
 */
export function parseDestination(dest: string): Destination {
  if (dest === '') throw new CairnError('BAD_INPUT', 'empty target destination: use a folder or s3:http://host:port/bucket/prefix');
  if (!dest.startsWith('s3:')) return { type: 'folder', path: dest };
  const rest = dest.slice(3);
  const url = /^https?:\/\//.test(rest) ? rest : `https://${rest}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CairnError('BAD_INPUT', 'invalid S3 target: use s3:http://host:port/bucket/prefix');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw new CairnError('BAD_INPUT', 'an S3 target URL must not hold credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  }
  const parts = decodeURIComponent(parsed.pathname).split('/').filter((p) => p !== '');
  if (parts.length === 0) throw new CairnError('BAD_INPUT', 'an S3 target needs a bucket: s3:http://host:port/bucket/prefix');
  return { type: 's3', endpoint: `${parsed.protocol}//${parsed.host}`, bucket: parts[0], prefix: parts.slice(1).join('/') };
}

const destinationSchema = z.string().superRefine((s, ctx) => {
  try {
    parseDestination(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
  }
});

export const archiveTargetSchema = z
  .object({ kind: z.literal('archive'), dest: destinationSchema, codec: z.enum(CODECS), keep: keepSchema.optional() })
  .strict();
export type ArchiveTarget = z.infer<typeof archiveTargetSchema>;

export const mirrorTargetSchema = z
  .object({ kind: z.literal('mirror'), dest: destinationSchema, trash: z.object({ keep: keepSchema.optional() }).strict().optional() })
  .strict();
export type MirrorTarget = z.infer<typeof mirrorTargetSchema>;

/** Parses a target configuration with its schema, or throws BAD_INPUT naming every problem. */
export function checkTarget<T>(schema: z.ZodType<T>, cfg: unknown, what: string): T {
  const parsed = schema.safeParse(cfg);
  if (parsed.success) return parsed.data;
  throw new CairnError('BAD_INPUT', `invalid ${what} target: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'target'}: ${i.message}`).join('; ')}`);
}

/** An archive or mirror target's configuration, told apart by `kind`. */
export const targetSchema = z.discriminatedUnion('kind', [archiveTargetSchema, mirrorTargetSchema]);

/**
 * Parses a target spec string as the CLI and plans write it: `archive:DIR`, `archive:s3:http://host:port/bucket/prefix`,
 * `mirror:DIR`, `mirror:s3:…`. The codec and retention are separate settings; an archive spec gets `codec` (default gzip).
 * Throws BAD_INPUT for other strings.
 * @example parseTargetSpec('mirror:s3:http://127.0.0.1:9000/backups/docs') // { kind: 'mirror', dest: 's3:http://127.0.0.1:9000/backups/docs' }
 */
export function parseTargetSpec(spec: string, codec: Codec = 'gzip'): ArchiveTarget | MirrorTarget {
  const colon = spec.indexOf(':');
  const kind = colon < 0 ? spec : spec.slice(0, colon);
  const dest = colon < 0 ? '' : spec.slice(colon + 1);
  if (kind !== 'archive' && kind !== 'mirror') {
    throw new CairnError('BAD_INPUT', 'unknown target: use archive:DIR, archive:s3:http://host:port/bucket/prefix, mirror:DIR or mirror:s3:…');
  }
  if (dest === '') throw new CairnError('BAD_INPUT', `${kind}: needs a destination, as in ${kind}:/srv/copies or ${kind}:s3:http://host:port/bucket/prefix`);
  parseDestination(dest);
  if (!(CODECS as readonly string[]).includes(codec)) throw new CairnError('BAD_INPUT', `unknown codec ${JSON.stringify(codec)}: use ${CODECS.join(', ')}`);
  return kind === 'archive' ? { kind, dest, codec } : { kind, dest };
}

/** zod's form of parseTargetSpec, for schemas that hold a spec string. */
export const targetSpecSchema = z.string().transform((s, ctx) => {
  try {
    return parseTargetSpec(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
