import type { Request } from 'express';
import { type z } from 'zod';
import { type FieldIssue, fieldIssues, validationFailed } from '@cloudretail/errors';

type Schemas = { body?: z.ZodType; query?: z.ZodType; params?: z.ZodType; headers?: z.ZodType };
type Parsed<S extends Schemas> = { [K in keyof S]: S[K] extends z.ZodType ? z.output<S[K]> : never };

/** Paths (`a.0.b`) of the strings in `value` that hold a NUL character. */
function nulPaths(value: unknown, path: string[] = []): string[] {
  if (typeof value === 'string') return value.includes('\u0000') ? [path.join('.')] : [];
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, child]) => nulPaths(child, [...path, key]));
}

/**
 * Validates the parts of a request named in `schemas` and returns them typed. Every bad field
 * of every part is reported in one `validation_failed` error. A string holding a NUL character
 * (`%00`, `\u0000`) is one: Postgres cannot store or compare it, so it would fail as a 500.
 */
export function parseRequest<S extends Schemas>(req: Request, schemas: S): Parsed<S> {
  const issues: FieldIssue[] = [];
  const out: Record<string, unknown> = {};
  for (const [location, schema] of Object.entries(schemas) as [keyof Schemas, z.ZodType][]) {
    const result = schema.safeParse(req[location] ?? {});
    if (!result.success) issues.push(...fieldIssues(location, result.error));
    else {
      out[location] = result.data;
      issues.push(...nulPaths(result.data).map((path) => ({ location, path, message: 'must not contain the NUL character' })));
    }
  }
  if (issues.length) throw validationFailed(issues);
  return out as Parsed<S>;
}
