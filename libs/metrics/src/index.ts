import type { NextFunction, Request, Response } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

export interface Metrics {
  registry: Registry;
  /** Records duration and count of every HTTP request, labelled by route template. */
  httpMiddleware: (req: Request, res: Response, next: NextFunction) => void;
  /** `GET /metrics` handler. */
  handler: (req: Request, res: Response) => Promise<void>;
}

export interface MetricsOptions {
  /** Added as the `service` label on every series. */
  service: string;
  /** Collect process metrics (CPU, memory, event-loop lag). Off in tests that create many registries. */
  defaultMetrics?: boolean;
}

/**
 * The route label is the matched route template (`/products/:id`), never the raw path, so the
 * number of series stays bounded. Requests that matched no route are labelled `unmatched`;
 * mounted middleware (a proxy) is labelled by its mount path.
 */
export function routeTemplate(req: Request): string {
  const path = req.route?.path;
  if (typeof path === 'string') return `${req.baseUrl}${path}`;
  return (req as Request & { routeLabel?: string }).routeLabel ?? 'unmatched';
}

/** Marks a request handled by mounted middleware (not a route) with a bounded route label. */
export function labelRoute(label: string) {
  return (req: Request, _res: Response, next: NextFunction) => {
    (req as Request & { routeLabel?: string }).routeLabel = label;
    next();
  };
}

/** A registry with default process metrics and the RED metrics progressive delivery queries. */
export function createMetrics({ service, defaultMetrics = true }: MetricsOptions): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (defaultMetrics) {
    collectDefaultMetrics({ register: registry });
    // prom-client names these gauges `*_total`, which Prometheus reserves for counters (promtool
    // rejects them); `nodejs_active_handles` and friends carry the same information.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
      registry.removeSingleMetric(name);
    }
  }

  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration in seconds, by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const total = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests served, by method, route template and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });

  return {
    registry,
    httpMiddleware(req, res, next) {
      const start = process.hrtime.bigint();
      res.once('finish', () => {
        const labels = { method: req.method, route: routeTemplate(req), status: String(res.statusCode) };
        duration.observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
        total.inc(labels);
      });
      next();
    },
    async handler(_req, res) {
      res.setHeader('content-type', registry.contentType);
      res.end(await registry.metrics());
    },
  };
}
