import type { Express, Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import { schemaComponents } from './openapi';
import { parseRequest } from './validate';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** A response other than a plain JSON body, e.g. a Server-Sent Events stream. */
export interface ResponseDoc {
  description: string;
  /** Media type of the body (default `application/json`). */
  contentType?: string;
  /** Body schema; `null` or absent for no body. */
  schema?: z.ZodType | null;
}

export interface RouteSpec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined, P extends z.ZodType | undefined> {
  method: Method;
  /** Express path, e.g. `/products/:id`. */
  path: string;
  summary: string;
  /** Unique name of the operation for client generators (default: method + path, e.g. `getProductsById`). */
  operationId?: string;
  description?: string;
  /** Documentation groups (default: the API's title). */
  tags?: string[];
  /** Documented security: `user` (any valid token), `admin`, or public. */
  auth?: 'user' | 'admin';
  body?: B;
  query?: Q;
  params?: P;
  /** Extra headers the route reads, documented as parameters (e.g. `Idempotency-Key`). */
  headers?: Record<string, { required: boolean; description: string }>;
  /**
   * Status code → response body schema (`null` for no body), or a {@link ResponseDoc}. Error statuses
   * (≥ 400) are always documented with the error envelope; the ones every route of its kind can
   * answer (400, 401, 403, 404, 413, 500) are added without being listed.
   */
  responses: Record<number, z.ZodType | null | ResponseDoc>;
  /** Runs before validation: authentication, role checks. */
  before?: RequestHandler[];
}

type Out<T> = T extends z.ZodType ? z.output<T> : undefined;
export type Handler<B, Q, P> = (input: { body: Out<B>; query: Out<Q>; params: Out<P> }, req: Request, res: Response) => unknown;

export const ErrorEnvelopeSchema = z
  .object({
    error: z.object({
      code: z.string().describe('Machine-readable error code, e.g. `validation_failed`, `not_found`, `rate_limited`'),
      message: z.string(),
      details: z.unknown().optional().describe('For `validation_failed`: every bad field as `{location, path, message}`'),
    }),
  })
  .meta({ id: 'Error', description: 'The error envelope every 4xx and 5xx answer carries' });

const ERROR_TEXT: Record<number, string> = {
  400: 'Validation failed or malformed JSON (`details` lists every bad field)',
  401: 'Missing, invalid or expired token',
  403: 'Authenticated but not allowed',
  404: 'Not found',
  409: 'Conflict with the current state',
  413: 'Body over the size limit',
  429: 'Rate limited (see `retry-after`)',
  500: 'Unexpected error',
  503: 'A dependency is unavailable or the service is at capacity (see `retry-after`)',
};

/** Headers some error answers carry, as OpenAPI `components.headers`. */
export const RESPONSE_HEADERS = {
  RetryAfter: { description: 'Seconds to wait before retrying', schema: { type: 'integer', minimum: 0 } },
} as const;
const HEADER_OF: Record<number, Record<string, { $ref: string }>> = {
  429: { 'Retry-After': { $ref: '#/components/headers/RetryAfter' } },
  503: { 'Retry-After': { $ref: '#/components/headers/RetryAfter' } },
};

const ERROR_BODY = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };

/** `post /auth/register` → `postAuthRegister`, `get /products/:id` → `getProductsById`. */
const defaultOperationId = (method: string, path: string) =>
  method +
  path
    .split('/')
    .filter(Boolean)
    .map((part) => (part.startsWith(':') ? `By${part[1].toUpperCase()}${part.slice(2)}` : part))
    .map((part) => part.replace(/(^|[-_.])(\w)/g, (_m, _sep, c: string) => c.toUpperCase()))
    .join('');

/** The error answers a route can give without listing them: they follow from what it reads. */
function implicitErrors(spec: RouteSpec<z.ZodType | undefined, z.ZodType | undefined, z.ZodType | undefined>): number[] {
  return [
    ...(spec.body || spec.query || spec.params || spec.headers ? [400] : []),
    ...(spec.auth ? [401] : []),
    ...(spec.auth === 'admin' ? [403] : []),
    ...(spec.params ? [404] : []),
    ...(spec.body ? [413] : []),
    500,
  ];
}

/**
 * Routes declared once with their schemas: the same schema validates the request and writes the
 * OpenAPI document (`GET /openapi.json`), so the two cannot drift.
 */
export function createApi({ title, version, description }: { title: string; version: string; description?: string }) {
  const routes: { spec: RouteSpec<z.ZodType | undefined, z.ZodType | undefined, z.ZodType | undefined>; handler: Handler<unknown, unknown, unknown> }[] = [];

  function route<B extends z.ZodType | undefined = undefined, Q extends z.ZodType | undefined = undefined, P extends z.ZodType | undefined = undefined>(
    spec: RouteSpec<B, Q, P>,
    handler: Handler<B, Q, P>,
  ): void {
    routes.push({ spec, handler: handler as Handler<unknown, unknown, unknown> });
  }

  function document(): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    const schemas = schemaComponents();
    const errorRef = schemas.add(ErrorEnvelopeSchema, 'output');
    for (const { spec } of routes) {
      const path = spec.path.replace(/:(\w+)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [where, s] of [['path', spec.params], ['query', spec.query]] as const) {
        if (!s) continue;
        const json = schemas.add(s, 'input') as { properties?: Record<string, { description?: string }>; required?: string[] };
        for (const [name, prop] of Object.entries(json.properties ?? {})) {
          const { description: about, ...schema } = prop;
          parameters.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), ...(about ? { description: about } : {}), schema });
        }
      }
      for (const [name, h] of Object.entries(spec.headers ?? {})) parameters.push({ name, in: 'header', required: h.required, description: h.description, schema: { type: 'string' } });
      const responses: Record<string, unknown> = {};
      for (const [status, r] of Object.entries(spec.responses)) {
        if (Number(status) >= 400) continue;
        const doc: ResponseDoc = r === null || r instanceof z.ZodType ? { description: r ? 'Success' : 'No content', schema: r } : r;
        responses[status] = {
          description: doc.description,
          ...(doc.schema || doc.contentType ? { content: { [doc.contentType ?? 'application/json']: { schema: doc.schema ? schemas.add(doc.schema, 'output') : {} } } } : {}),
        };
      }
      const errors = [...Object.keys(spec.responses).map(Number).filter((s) => s >= 400), ...implicitErrors(spec)].sort();
      for (const status of errors) {
        responses[status] ??= { description: ERROR_TEXT[status] ?? 'Error', ...(HEADER_OF[status] ? { headers: HEADER_OF[status] } : {}), content: ERROR_BODY };
      }
      paths[path] ??= {};
      paths[path][spec.method] = {
        operationId: spec.operationId ?? defaultOperationId(spec.method, spec.path),
        summary: spec.summary,
        ...(spec.description ? { description: spec.description } : {}),
        tags: spec.tags ?? [title],
        security: spec.auth ? [{ bearer: [] }] : [],
        ...(spec.auth ? { 'x-required-role': spec.auth === 'admin' ? 'admin' : 'any' } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(spec.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemas.add(spec.body, 'input') } } } } : {}),
        responses,
      };
    }
    return {
      openapi: '3.0.3',
      info: { title, version, ...(description ? { description } : {}) },
      tags: [{ name: title, description: description ?? title }],
      paths,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
        headers: RESPONSE_HEADERS,
        schemas: { ...schemas.components, Error: schemas.components.Error ?? errorRef },
      },
    };
  }

  /** Registers every route (validation first, then the handler) and `GET /openapi.json`. */
  function mount(app: Express): void {
    for (const { spec, handler } of routes) {
      const validate: RequestHandler = (req, res, next) => {
        const schemas = { ...(spec.body ? { body: spec.body } : {}), ...(spec.query ? { query: spec.query } : {}), ...(spec.params ? { params: spec.params } : {}) };
        const input = parseRequest(req, schemas) as Parameters<typeof handler>[0];
        return Promise.resolve(handler(input, req, res)).catch(next);
      };
      app[spec.method](spec.path, ...(spec.before ?? []), validate);
    }
    const doc = document();
    app.get('/openapi.json', (_req, res) => {
      res.json(doc);
    });
  }

  return { route, document, mount };
}
