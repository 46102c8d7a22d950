import type { Express, Request, RequestHandler, Response } from 'express';
import { z } from 'zod';
import { parseRequest } from './validate';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteSpec<B extends z.ZodType | undefined, Q extends z.ZodType | undefined, P extends z.ZodType | undefined> {
  method: Method;
  /** Express path, e.g. `/products/:id`. */
  path: string;
  summary: string;
  /** Documented security: `user` (any valid token), `admin`, or public. */
  auth?: 'user' | 'admin';
  body?: B;
  query?: Q;
  params?: P;
  /** Extra headers the route reads, documented as parameters (e.g. `Idempotency-Key`). */
  headers?: Record<string, { required: boolean; description: string }>;
  /** Status code → response body schema (`null` for no body). */
  responses: Record<number, z.ZodType | null>;
  /** Runs before validation: authentication, role checks. */
  before?: RequestHandler[];
}

type Out<T> = T extends z.ZodType ? z.output<T> : undefined;
export type Handler<B, Q, P> = (input: { body: Out<B>; query: Out<Q>; params: Out<P> }, req: Request, res: Response) => unknown;

export const ErrorEnvelopeSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) })
  .meta({ id: 'Error' });

const ERROR_TEXT: Record<number, string> = {
  400: 'Validation failed or malformed JSON',
  401: 'Missing, invalid or expired token',
  403: 'Authenticated but not allowed',
  404: 'Not found',
  409: 'Conflict',
  413: 'Body over 1 MiB',
  429: 'Rate limited',
};

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
    const schema = (s: z.ZodType, io: 'input' | 'output') => {
      const { $schema: _ignored, ...json } = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'openapi-3.0' }) as Record<string, unknown>;
      return json;
    };
    for (const { spec } of routes) {
      const path = spec.path.replace(/:(\w+)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [where, s] of [['path', spec.params], ['query', spec.query]] as const) {
        if (!s) continue;
        const json = schema(s, 'input') as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, prop] of Object.entries(json.properties ?? {})) {
          parameters.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), schema: prop });
        }
      }
      for (const [name, h] of Object.entries(spec.headers ?? {})) parameters.push({ name, in: 'header', required: h.required, description: h.description, schema: { type: 'string' } });
      const responses: Record<string, unknown> = {};
      for (const [status, s] of Object.entries(spec.responses)) {
        responses[status] = s ? { description: 'Success', content: { 'application/json': { schema: schema(s, 'output') } } } : { description: 'No content' };
      }
      const errors = [400, 404, 413, ...(spec.auth ? [401] : []), ...(spec.auth === 'admin' ? [403] : [])];
      for (const status of errors) {
        responses[status] ??= { description: ERROR_TEXT[status], content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
      }
      paths[path] ??= {};
      paths[path][spec.method] = {
        summary: spec.summary,
        ...(spec.auth ? { security: [{ bearer: [] }], 'x-required-role': spec.auth === 'admin' ? 'admin' : 'any' } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(spec.body ? { requestBody: { required: true, content: { 'application/json': { schema: schema(spec.body, 'input') } } } } : {}),
        responses,
      };
    }
    return {
      openapi: '3.0.3',
      info: { title, version, ...(description ? { description } : {}) },
      paths,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
        schemas: { Error: schema(ErrorEnvelopeSchema, 'output') },
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
