/** JSON schemas of the API's bodies and replies; the plan schema is generated from the zod schema the daemon validates with. */
import { z } from 'zod';
import type { FastifySchemaCompiler } from 'fastify';
import { CairnError } from '../../errors.js';
import { PlanInput, describeIssues } from '../config.js';
import { JOB_KINDS, JOB_STATES } from '../catalog.js';
import { errorSchema } from './server.js';

declare module 'fastify' {
  interface FastifySchema {
    /** One line for the OpenAPI document. */
    summary?: string;
  }
}

function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any', target: 'draft-7' }) as Record<string, unknown>;
  return rest;
}

export const planBodySchema = jsonSchema(PlanInput);

/**
 * Validates a body with a zod schema (for messages that name the field and say what is wrong)
 * while the route keeps its JSON schema for documentation; other parts pass through unchanged.
 */
export function zodBody(schema: z.ZodType, what: string): FastifySchemaCompiler<unknown> {
  return ({ httpPart }) =>
    (data: unknown) => {
      if (httpPart !== 'body') return { value: data };
      const r = schema.safeParse(data);
      return r.success ? { value: data } : { error: new CairnError('BAD_INPUT', `invalid ${what}: ${describeIssues(r.error)}`) };
    };
}

/** Checks only that the body is a JSON object; the handler validates the rest (a PUT's name comes from the URL). */
export function objectBody(what: string): FastifySchemaCompiler<unknown> {
  return ({ httpPart }) =>
    (data: unknown) =>
      httpPart !== 'body' || (data !== null && typeof data === 'object' && !Array.isArray(data)) ? { value: data } : { error: new CairnError('BAD_INPUT', `invalid ${what}: send a JSON object`) };
}

const obj = (properties: Record<string, unknown>, required: string[] = []) => ({ type: 'object', properties, required, additionalProperties: true });
const nullable = (type: string) => ({ type: [type, 'null'] });

export const nameParams = obj({ name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' } }, ['name']);
export const idParams = obj({ id: { type: 'string', minLength: 1, maxLength: 64 } }, ['id']);

export const taskSchema = obj({
  id: { type: 'string' },
  name: { type: 'string' },
  state: { type: 'string', enum: JOB_STATES },
  attempts: { type: 'integer' },
  error: nullable('string'),
  files: { type: 'integer' },
  bytes: { type: 'integer' },
  result: {},
  startedAt: nullable('string'),
  finishedAt: nullable('string'),
});

export const jobSchema = obj({
  id: { type: 'string' },
  plan: nullable('string'),
  kind: { type: 'string', enum: JOB_KINDS },
  trigger: { type: 'string' },
  state: { type: 'string', enum: JOB_STATES },
  attempts: { type: 'integer' },
  error: nullable('string'),
  files: { type: 'integer' },
  bytes: { type: 'integer' },
  changedPaths: { type: ['array', 'null'], items: { type: 'string' } },
  result: {},
  meta: {},
  createdAt: { type: 'string' },
  startedAt: nullable('string'),
  finishedAt: nullable('string'),
  tasks: { type: 'array', items: taskSchema },
});

export const statusSchema = obj({
  name: { type: 'string' },
  paused: { type: 'boolean' },
  running: { type: 'boolean' },
  lastSuccess: nullable('string'),
  lastRun: { type: ['object', 'null'], additionalProperties: true },
  nextRun: nullable('string'),
  pendingChanges: { type: 'integer' },
  behind: { type: 'boolean' },
  target: obj({ kind: { type: 'string' }, location: { type: 'string' }, sizeBytes: { type: ['integer', 'null'] }, freeBytes: { type: ['integer', 'null'] } }),
  check: {
    type: ['object', 'null'],
    properties: {
      schedule: nullable('string'),
      nextRun: nullable('string'),
      lastRun: { type: ['object', 'null'], additionalProperties: true },
      lastSuccess: nullable('string'),
      problems: { type: ['integer', 'null'] },
    },
    additionalProperties: true,
  },
});

export const planReplySchema = obj({ plan: { type: 'object', additionalProperties: true }, status: statusSchema }, ['plan', 'status']);

/** The usual error replies of a route. */
export const errors = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, errorSchema]));
