import type http from 'node:http';
import helmet from 'helmet';
import { toAppError } from '@cloudretail/errors';
import { type Express, logError, tagRequest } from '@cloudretail/http';
import type { Logger } from '@cloudretail/logging';
import type { Metrics } from '@cloudretail/metrics';
import { type Admit, routeOf, takeAccessToken } from './edge/edge';
import { sendError } from './proxy/send-error';
import type { Group, UpstreamName } from './routes';

/** Connect-style middleware on plain node req/res. */
type Step = (req: http.IncomingMessage, res: http.ServerResponse, next: (error?: unknown) => void) => void;

export interface HotPathOptions {
  /** Serves everything the hot path does not take. */
  app: Express;
  admit: Admit;
  metrics: Metrics;
  logger: Logger;
  forward: (upstream: UpstreamName, group: Group, req: http.IncomingMessage, res: http.ServerResponse) => void;
}

/**
 * A proxied `/api` request without an `Origin` header (no CORS to do: not a browser) skips express
 * and goes through the same steps the express app runs for it: request id, security headers,
 * metrics, the edge checks, then the proxy. Neither path runs requests in an AsyncLocalStorage log
 * context (`logContext: false`): lines about a request name its id themselves. Express swaps the prototypes of every req/res and walks
 * its router: about half of the gateway's CPU per proxied request (≈ 300 → 145 µs against a static
 * upstream; issue #4). Everything else (browsers, docs, health, `/metrics`, 404s) goes to `app`.
 */
export function withHotPath({ app, admit, metrics, logger, forward }: HotPathOptions): http.RequestListener {
  // The metrics middleware only uses node's req/res API.
  const measure = metrics.httpMiddleware as unknown as Step;
  // The options createApp (libs/http) gives helmet.
  const securityHeaders: Step = helmet({ contentSecurityPolicy: false, crossOriginEmbedderPolicy: false });

  return (req, res) => {
    let url = req.url ?? '/';
    const route = url.startsWith('/api/') && req.headers.origin === undefined ? routeOf(req.method ?? 'GET', url.slice(4)) : undefined;
    const upstream = route?.upstream;
    if (!route || !upstream) return void app(req, res);
    if (route.group === 'events') url = takeAccessToken(req, url);

    // The metrics label, as the express path sets it.
    (req as typeof req & { routeLabel?: string }).routeLabel = route.label;
    const id = tagRequest(req, res);
    const answer = (error: unknown) => {
      const appError = toAppError(error);
      logError(logger, appError, { method: req.method, path: url.split('?', 1)[0], requestId: id });
      sendError(res, appError);
    };
    const admitted = (error?: unknown) => {
      if (error) return answer(error);
      req.url = url.slice(4); // /api/products/1 → /products/1
      forward(upstream, route.group, req, res);
    };
    securityHeaders(req, res, () => measure(req, res, () => admit(req, res, route, admitted)));
  };
}
