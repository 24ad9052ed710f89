import fs from 'node:fs/promises';
import { z } from 'zod';
import { CairnError } from '../../../errors.js';
import type { DbLocation } from '../url.js';

/** One database in a `db-dump` config, in the shape existing configs use (ports as strings too). */
export const DumpEntrySchema = z.object({
  database_name: z.string().regex(/^[A-Za-z0-9_]{1,64}$/, 'must be 1-64 letters, digits or underscores'),
  db_host: z.string().min(1, 'must not be empty'),
  db_port: z
    .union([z.string().regex(/^\d{1,5}$/, 'must be a port number'), z.number().int()])
    .transform(Number)
    .pipe(z.number().int().min(1).max(65535))
    .optional(),
  db_username: z.string().min(1, 'must not be empty'),
  db_password: z.string().default(''),
  engine: z.enum(['mysql', 'postgres']).default('mysql'),
});

export const DumpConfigSchema = z.array(DumpEntrySchema).min(1, 'lists no databases');

export type DumpEntry = z.infer<typeof DumpEntrySchema>;

/** Reads and validates a config; every problem is named with its entry and field. */
export async function loadDumpConfig(file: string): Promise<DumpEntry[]> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (err) {
    throw new CairnError('BAD_INPUT', `cannot read --config ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CairnError('BAD_INPUT', `${file} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = DumpConfigSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => {
      const [index, field] = i.path;
      if (typeof index !== 'number') return i.message;
      const name = (json as { database_name?: unknown }[])[index]?.database_name;
      return `entry ${index + 1}${typeof name === 'string' ? ` (${name})` : ''}${field !== undefined ? `: ${String(field)}` : ''}: ${i.message}`;
    });
    throw new CairnError('BAD_INPUT', `${file}: ${Array.isArray(json) ? '' : 'expected a JSON list of databases; '}${problems.join('; ')}`);
  }
  return parsed.data;
}

export function locationOf(e: DumpEntry): DbLocation {
  return {
    engine: e.engine,
    database: e.database_name,
    host: e.db_host,
    port: e.db_port ?? (e.engine === 'postgres' ? 5432 : 3306),
    user: e.db_username,
    password: e.db_password,
    format: 'plain',
  };
}
