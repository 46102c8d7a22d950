import cors from 'cors';
import Redis from 'ioredis';
import { createAuth, keysFromConfig } from '@cloudretail/auth';
import { ConfigError, loadConfig } from '@cloudretail/config';
import http from 'node:http';
import { once } from 'node:events';
import { AppError } from '@cloudretail/errors';
import { createApp, finishApp } from '@cloudretail/http';
import { type Logger, type LoggerOptions, createLogger } from '@cloudretail/logging';
import { type Metrics, createMetrics } from '@cloudretail/metrics';
import { type RunningServer, serve } from '@cloudretail/shutdown';
import { type Config, configSchema, rateRuleFor, timeoutFor } from './config';
import { docsRouter } from './docs/docs';
import { createEdge, edgeMiddleware } from './edge/edge';
import { type RateLimiter, createRateLimiter } from './edge/rate-limiter';
import { createTokenVerifier } from './edge/token-verifier';
import { withHotPath } from './hot-path';
import { sendError } from './proxy/send-error';
import { type Upstream, createUpstream, createUpstreamMetrics } from './proxy/upstream';
import { GROUPS, type Group, UPSTREAMS, type UpstreamName } from './routes';

const NAME = 'api-gateway';

export interface GatewayContext {
  config: Config;
  logger: Logger;
  metrics: Metrics;
  redis: Redis;
  limiter?: RateLimiter;
  upstreams: Record<UpstreamName, Upstream>;
}

export interface RunningGateway extends RunningServer {
  ctx: GatewayContext;
  /** The admin listener's port (probes and metrics) when ADMIN_PORT is set. */
  adminPort?: number;
}

const upstreamUrl = (config: Config): Record<UpstreamName, string> => ({
  'user-service': config.USER_SERVICE_URL,
  'product-service': config.PRODUCT_SERVICE_URL,
  'order-service': config.ORDER_SERVICE_URL,
  'inventory-service': config.INVENTORY_SERVICE_URL,
  'payment-service': config.PAYMENT_SERVICE_URL,
  'event-bus': config.EVENT_BUS_URL,
});

/**
 * The rate limiter's Redis client: commands fail at once while disconnected (no offline queue)
 * and within 500 ms when Redis hangs, so an outage turns into fail-open, never into waiting.
 */
function createLimiterRedis(url: string): Redis {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 500,
    connectTimeout: 2_000,
    // ioredis keeps a timer this long after disconnect() even when the socket is already gone.
    disconnectTimeout: 200,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  redis.on('error', () => undefined); // reported by the limiter (once per interval) and its metric
  return redis;
}

/** The gateway app: edge checks, the docs, and one proxy per upstream, behind the hot path. */
function buildApp(ctx: GatewayContext): http.RequestListener {
  const { config, logger, metrics, limiter, upstreams } = ctx;
  const faults = { errorRate: config.FAULT_ERROR_RATE, delayMs: config.FAULT_DELAY_MS };
  // No AsyncLocalStorage log context (see hot-path.ts): the gateway's request lines name their id.
  const app = createApp({ logger, metrics, parseJson: false, faults, logContext: false });
  app.set('trust proxy', config.TRUST_PROXY ? 1 : false);

  const allowed = new Set(config.ALLOWED_ORIGINS);
  const corsHandler = cors({
    origin: (origin, done) => done(null, origin !== undefined && allowed.has(origin)),
    credentials: true,
    exposedHeaders: ['x-request-id', 'retry-after', 'ratelimit-limit', 'ratelimit-remaining'],
    maxAge: 600,
  });
  // Only browsers send Origin; everything else skips the CORS work.
  app.use((req, res, next) => (req.headers.origin === undefined ? next() : corsHandler(req, res, next)));

  const rules = Object.fromEntries(GROUPS.map((g) => [g, rateRuleFor(config, g)])) as Record<Group, ReturnType<typeof rateRuleFor>>;
  const timeouts = Object.fromEntries(GROUPS.map((g) => [g, timeoutFor(config, g)])) as Record<Group, number>;
  // Public keys only (JWT_PUBLIC_KEY or JWKS_URL, fetched now, not per request); revocation is checked by the services.
  const keys = keysFromConfig(config, (err) => logger.warn({ err, url: config.JWKS_URL }, 'JWKS fetch failed'));
  keys.warm();
  const verifier = createTokenVerifier({ auth: createAuth({ keys }), maxEntries: config.TOKEN_CACHE_SIZE, maxAgeMs: config.TOKEN_CACHE_TTL_MS });
  const admit = createEdge({ verifier, limiter, ruleFor: (g) => rules[g], bodyLimitBytes: config.BODY_LIMIT_BYTES, trustProxy: config.TRUST_PROXY });
  const forward = (upstream: UpstreamName, group: Group, req: http.IncomingMessage, res: http.ServerResponse) => upstreams[upstream].forward(req, res, timeouts[group]);

  app.use('/api', edgeMiddleware(admit));
  const urls = upstreamUrl(config);
  app.use('/api/docs', docsRouter({ upstreams: UPSTREAMS.map((name) => ({ name, url: urls[name] })), ttlMs: config.DOCS_CACHE_TTL_MS, logger }));
  app.use('/api', (req, res, next) => {
    const route = req.gatewayRoute;
    if (!route?.upstream) return next();
    // Mounted at /api, so req.url is already the upstream path: /api/products/1 → /products/1.
    forward(route.upstream, route.group, req, res);
  });
  finishApp(app);
  // Fault drills (deployment rollback tests) inject in express: keep every request there then.
  if (faults.errorRate > 0 || faults.delayMs > 0) return app;
  return withHotPath({ app, admit, metrics, logger, forward });
}

/** Starts the gateway (tests pass their own environment and port 0, and may read its log lines). */
export async function start(env: NodeJS.ProcessEnv = process.env, { logDestination }: { logDestination?: LoggerOptions['destination'] } = {}): Promise<RunningGateway> {
  const config = loadConfig(configSchema, env);
  const logger = createLogger({ name: NAME, level: config.LOG_LEVEL, destination: logDestination });
  const metrics = createMetrics({ service: NAME, defaultMetrics: config.NODE_ENV !== 'test' });
  const redis = createLimiterRedis(config.REDIS_URL);
  const limiter = config.RATE_LIMIT_ENABLED
    ? createRateLimiter({
        redis,
        logger,
        registry: metrics.registry,
        prefix: config.RATE_LIMIT_KEY_PREFIX,
        syncIntervalMs: config.RATE_LIMIT_SYNC_MS,
        exactFrom: config.RATE_LIMIT_EXACT_FROM,
      })
    : undefined;
  // Fail open: the gateway serves without Redis and keeps reconnecting in the background.
  await redis.connect().catch(() => undefined);

  const upstreamMetrics = createUpstreamMetrics(metrics.registry);
  const urls = upstreamUrl(config);
  const upstreams = Object.fromEntries(
    UPSTREAMS.map((name) => [
      name,
      createUpstream({
        name,
        url: urls[name],
        logger,
        metrics: upstreamMetrics,
        // Each Server-Sent Events stream holds its connection for minutes: never queue them.
        maxSockets: name === 'event-bus' ? Infinity : config.UPSTREAM_MAX_SOCKETS,
        failureThreshold: config.CIRCUIT_FAILURE_THRESHOLD,
        openMs: config.CIRCUIT_OPEN_MS,
        bodyLimitBytes: config.BODY_LIMIT_BYTES,
      }),
    ]),
  ) as Record<UpstreamName, Upstream>;

  const ctx: GatewayContext = { config, logger, metrics, redis, limiter, upstreams };
  const running = await serve({
    app: buildApp(ctx),
    port: config.PORT,
    host: config.HOST,
    logger,
    // Readiness is the gateway's own state (started, not shutting down). Redis is reported but
    // optional: the rate limiter fails open, so a Redis outage degrades limits, not traffic.
    // Upstreams are not checked: one service down must not take the whole edge out of rotation.
    checks: [{ name: 'redis', optional: true, check: () => redis.ping() }],
    delayMs: config.SHUTDOWN_DELAY_MS,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    closers: [
      { name: 'rate-limiter', close: () => limiter?.stop() },
      { name: 'redis', close: () => (redis.status === 'ready' ? redis.quit() : redis.disconnect()) },
      { name: 'upstream-agents', close: () => Object.values(upstreams).forEach((u) => u.close()) },
    ],
  });
  const admin = config.ADMIN_PORT > 0 ? await serveAdmin(running.server, config.ADMIN_PORT, config.HOST, logger) : undefined;
  if (!admin) return { ...running, ctx };
  return { ...running, ctx, adminPort: (admin.address() as { port: number }).port, stop: () => running.stop().finally(() => admin.close()) };
}

/** `/metrics` and the probes (`/health/live|ready|startup`), the paths the admin port serves. */
const ADMIN_PATH = /^\/(?:metrics|health\/(?:live|ready|startup))(?:\?|$)/;

/**
 * With ADMIN_PORT, the probes and metrics answer on that port only: the public port is what the
 * internet reaches, and neither the readiness details nor the metrics are for it. The admin listener
 * hands its requests to the public server's own handlers (terminus probes, the express app), so
 * readiness and draining stay exactly as they are; the public server answers 404 for those paths.
 */
async function serveAdmin(server: http.Server, adminPort: number, host: string, logger: Logger): Promise<http.Server> {
  const handlers = server.listeners('request') as http.RequestListener[];
  const handle: http.RequestListener = (req, res) => handlers.forEach((h) => h.call(server, req, res));
  const notFound = (req: http.IncomingMessage, res: http.ServerResponse) => sendError(res, new AppError('not_found', `No route for ${req.method} ${(req.url ?? '').split('?')[0]}`));
  server.removeAllListeners('request');
  server.on('request', (req, res) => (ADMIN_PATH.test(req.url ?? '') ? notFound(req, res) : handle(req, res)));
  const admin = http.createServer((req, res) => (ADMIN_PATH.test(req.url ?? '') ? handle(req, res) : notFound(req, res)));
  admin.listen(adminPort, host);
  await once(admin, 'listening');
  // Closed with the process; SIGTERM handling (readiness 503, drain) belongs to the public server.
  admin.unref();
  logger.info({ adminPort }, 'probes and metrics on the admin port');
  return admin;
}

function main(): void {
  process.on('unhandledRejection', (reason) => createLogger({ name: NAME }).error({ err: reason }, 'unhandled rejection'));
  start().catch((error) => {
    if (error instanceof ConfigError) process.stderr.write(`${NAME}: ${error.message}\n`);
    else createLogger({ name: NAME }).fatal({ err: error }, 'start-up failed');
    process.exit(error instanceof ConfigError ? 78 : 1);
  });
}

if (require.main === module) main();
