import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type ErrorRequestHandler, type Express, type Request, type RequestHandler } from 'express';
import helmet from 'helmet';
import { AppError, toAppError, validationFailed } from '@cloudretail/errors';
import { type Logger, runWithContext } from '@cloudretail/logging';
import type { Metrics } from '@cloudretail/metrics';
import { type Faults, faultInjection } from './fault-injection';

export { express };
export type { Express, Request, RequestHandler };

export interface AppOptions {
  logger: Logger;
  metrics?: Metrics;
  /** Deliberate errors/latency for deployment drills (see fault-injection.ts); off by default. */
  faults?: Faults;
  /** JSON body limit; larger bodies get `413`. */
  bodyLimit?: string;
  /** Deepest nesting of arrays/objects a JSON body may have; deeper bodies get `400`. */
  maxJsonDepth?: number;
  /** Parse JSON bodies (the gateway turns this off so proxied bodies stream through). */
  parseJson?: boolean;
  /**
   * Run each request in its log context (AsyncLocalStorage), so every line logged while handling it
   * carries its id. On Node 20 that turns on async hooks for the whole process (≈ 35 µs per proxied
   * request in the gateway, issue #4); the gateway turns it off and names the id in its own lines.
   */
  logContext?: boolean;
}

const REQUEST_ID = /^[\w.:-]{1,128}$/;

/** Echoes a well-formed `x-request-id` or generates one, on the request (for upstreams) and the response. */
export function tagRequest(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
  req.headers['x-request-id'] = id;
  res.setHeader('x-request-id', id);
  return id;
}

/** {@link tagRequest}, then the rest of the request runs in its log context. */
export const requestId: RequestHandler = (req, res, next) => runWithContext({ requestId: tagRequest(req, res) }, next);

/**
 * The express app every service starts from: security headers, request id, metrics, JSON
 * parsing with a size limit, and `GET /metrics`. Add routes, then call {@link finishApp}.
 */
export function createApp({ logger, metrics, faults, bodyLimit = '1mb', maxJsonDepth = 64, parseJson = true, logContext = true }: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('logger', logger);
  app.use(logContext ? requestId : (req, res, next) => (tagRequest(req, res), next()));
  app.use(helmet({ contentSecurityPolicy: false, crossOriginEmbedderPolicy: false }));
  if (metrics) {
    app.use(metrics.httpMiddleware);
    app.get('/metrics', metrics.handler);
  }
  const injected = faults && faultInjection(faults);
  if (injected) app.use(injected);
  if (parseJson) app.use(express.json({ limit: bodyLimit }), boundJsonDepth(maxJsonDepth));
  return app;
}

/** Nesting depth of a parsed JSON value, walked without recursion and given up past `max`. */
function jsonDepthOver(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 0]];
  for (let next = stack.pop(); next; next = stack.pop()) {
    const [v, depth] = next;
    if (typeof v !== 'object' || v === null) continue;
    if (depth + 1 > max) return true;
    for (const child of Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * JSON.parse copes with any nesting, but recursive code after it (JSON.stringify, validation,
 * the database driver) overflows the stack on a body nested thousands deep: refuse those with 400.
 */
const boundJsonDepth =
  (max: number): RequestHandler =>
  (req, _res, next) =>
    next(
      jsonDepthOver(req.body, max)
        ? validationFailed([{ location: 'body', path: '', message: `must not nest arrays and objects more than ${max} levels deep` }])
        : undefined,
    );

/** Logs an error once, at a level that fits who caused it. */
export function logError(logger: Logger, error: AppError, context: Record<string, unknown> = {}): void {
  if (error.isClientError) logger.info({ ...context, code: error.code, status: error.status }, error.message);
  else logger.error({ ...context, code: error.code, status: error.status, err: error.cause ?? error }, error.message);
}

/** Adds the 404 catch-all and the one error handler that writes the error envelope. */
export function finishApp(app: Express): Express {
  const logger = app.get('logger') as Logger;
  app.use((req, _res, next) => next(new AppError('not_found', `No route for ${req.method} ${req.path}`)));
  const handler: ErrorRequestHandler = (err, req, res, _next) => {
    const error = toAppError(err);
    logError(logger, error, { method: req.method, path: req.path, requestId: req.headers['x-request-id'] });
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const retryAfter = (error.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
    if (error.code === 'rate_limited' && typeof retryAfter === 'number') res.setHeader('retry-after', String(Math.ceil(retryAfter)));
    res.status(error.status).json(error.toJSON());
  };
  app.use(handler);
  return app;
}

export { parseRequest } from './validate';
export { faultInjection, type Faults } from './fault-injection';
export { serviceClient, type ServiceClientOptions } from './service-client';
export { createApi, ErrorEnvelopeSchema, RESPONSE_HEADERS, type ResponseDoc, type RouteSpec, type Handler } from './api';
export { shed, shedLoad, type ShedLoadOptions } from './shed-load';
