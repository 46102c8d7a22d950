import type { Request } from 'express';
import { type z } from 'zod';
import { type FieldIssue, fieldIssues, validationFailed } from '@cloudretail/errors';

type Schemas = { body?: z.ZodType; query?: z.ZodType; params?: z.ZodType; headers?: z.ZodType };
type Parsed<S extends Schemas> = { [K in keyof S]: S[K] extends z.ZodType ? z.output<S[K]> : never };

/**
 * Validates the parts of a request named in `schemas` and returns them typed. Every bad field
 * of every part is reported in one `validation_failed` error.
 */
export function parseRequest<S extends Schemas>(req: Request, schemas: S): Parsed<S> {
  const issues: FieldIssue[] = [];
  const out: Record<string, unknown> = {};
  for (const [location, schema] of Object.entries(schemas) as [keyof Schemas, z.ZodType][]) {
    const result = schema.safeParse(req[location] ?? {});
    if (result.success) out[location] = result.data;
    else issues.push(...fieldIssues(location, result.error));
  }
  if (issues.length) throw validationFailed(issues);
  return out as Parsed<S>;
}
