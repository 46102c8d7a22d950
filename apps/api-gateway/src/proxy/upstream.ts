import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { type Plugin, createProxyMiddleware } from 'http-proxy-middleware';
import { AppError } from '@cloudretail/errors';
import type { Logger } from '@cloudretail/logging';
import { Counter, Gauge, Histogram, type Registry } from '@cloudretail/metrics';
import { CircuitBreaker, type CircuitState, type Permit } from './circuit-breaker';
import { sendError } from './send-error';

export interface UpstreamMetrics {
  duration: Histogram<'upstream' | 'status'>;
  errors: Counter<'upstream' | 'kind'>;
  circuit: Gauge<'upstream'>;
}

/** Registered once per registry and shared by every upstream. */
export function createUpstreamMetrics(registry: Registry): UpstreamMetrics {
  return {
    duration: new Histogram({
      name: 'gateway_upstream_request_duration_seconds',
      help: 'Time until an upstream sent its response headers, by upstream and status',
      labelNames: ['upstream', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    errors: new Counter({
      name: 'gateway_upstream_errors_total',
      help: 'Upstream calls that got no response, by upstream and kind (connection_refused, connection_reset, timeout, circuit_open, …)',
      labelNames: ['upstream', 'kind'] as const,
      registers: [registry],
    }),
    circuit: new Gauge({
      name: 'gateway_circuit_state',
      help: 'Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
  };
}

export interface UpstreamOptions {
  name: string;
  url: string;
  logger: Logger;
  metrics: UpstreamMetrics;
  /** Keep-alive connections to this upstream; `Infinity` for long-lived streams. */
  maxSockets: number;
  failureThreshold: number;
  openMs: number;
  /** Streamed request bodies larger than this are cut off with 413. */
  bodyLimitBytes: number;
}

/** One proxied call, from the gateway's point of view. */
interface Call {
  permit: Permit;
  /** For log lines (the gateway has no AsyncLocalStorage log context). */
  requestId: string | string[] | undefined;
  startedAt: number;
  timer?: NodeJS.Timeout;
  proxyReq?: http.ClientRequest;
  proxyRes?: http.IncomingMessage;
  /** The gateway answered itself (502/504/413): anything the upstream does later is discarded. */
  answered: boolean;
  /** The breaker has had its verdict (or its release). */
  settled: boolean;
}

const CIRCUIT_VALUE: Record<CircuitState, number> = { closed: 0, half_open: 1, open: 2 };

function errorKind(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ECONNREFUSED':
      return 'connection_refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'connection_reset';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'dns';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return 'unreachable';
    default:
      return 'other';
  }
}

/**
 * One upstream service: a keep-alive agent, a circuit breaker and an http-proxy-middleware
 * instance that streams bodies both ways (nothing is parsed). Failures always answer with the
 * error envelope: refused/reset → 502, no headers within the route's timeout → 504, circuit
 * open → 503.
 */
export function createUpstream({ name, url, logger, metrics, maxSockets, failureThreshold, openMs, bodyLimitBytes }: UpstreamOptions) {
  const calls = new WeakMap<http.IncomingMessage, Call>();
  // Idle sockets are closed after 30 s, well before the services' 65 s keep-alive timeout, so a
  // request never lands on a socket the upstream is closing.
  const agent = new http.Agent({ keepAlive: true, noDelay: true, maxSockets, maxFreeSockets: Math.min(maxSockets, 256), scheduling: 'lifo', timeout: 30_000 });
  const breaker = new CircuitBreaker({
    failureThreshold,
    openMs,
    onStateChange(state) {
      metrics.circuit.set({ upstream: name }, CIRCUIT_VALUE[state]);
      (state === 'closed' ? logger.info : logger.warn).call(logger, { upstream: name, circuit: state }, `circuit ${state.replace('_', '-')}`);
    },
  });
  metrics.circuit.set({ upstream: name }, 0);
  // One histogram child per status code seen, so the hot path skips prom-client's label hashing.
  const durationByStatus = new Map<number, ReturnType<UpstreamMetrics['duration']['labels']>>();
  const observe = (status: number, seconds: number) => {
    let child = durationByStatus.get(status);
    if (!child) durationByStatus.set(status, (child = metrics.duration.labels({ upstream: name, status: String(status) })));
    child.observe(seconds);
  };

  const settle = (call: Call, ok: boolean | undefined) => {
    if (call.settled) return;
    call.settled = true;
    if (ok === true) breaker.onSuccess(call.permit);
    else if (ok === false) breaker.onFailure(call.permit);
    else breaker.release(call.permit);
  };

  /** Answers the client ourselves and abandons the upstream call. */
  const fail = (call: Call, res: http.ServerResponse, kind: string, error: AppError, cause?: unknown) => {
    if (call.answered) return;
    call.answered = true;
    clearTimeout(call.timer);
    metrics.errors.inc({ upstream: name, kind });
    logger.warn({ upstream: name, kind, requestId: call.requestId, err: cause }, error.message);
    call.proxyReq?.destroy();
    if (res.headersSent) res.destroy();
    else sendError(res, error);
  };

  const events: Plugin = (proxy) => {
    proxy.on('start', (req, res) => {
      // A content-length body was checked before proxying; a chunked one is counted as it streams.
      // Subscribing here, in the same tick as http-proxy's pipe, loses no chunk.
      if (req.headers['transfer-encoding'] === undefined) return;
      let bytes = 0;
      const count = (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes <= bodyLimitBytes) return;
        req.off('data', count);
        req.unpipe();
        const call = calls.get(req);
        if (!call || call.answered) return;
        settle(call, undefined);
        call.answered = true;
        clearTimeout(call.timer);
        call.proxyReq?.destroy();
        res.setHeader('connection', 'close');
        sendError(res as http.ServerResponse, new AppError('payload_too_large', `Request body exceeds ${bodyLimitBytes} bytes`));
      };
      req.on('data', count);
    });
    proxy.on('proxyReq', (proxyReq, req) => {
      const call = calls.get(req);
      if (!call || call.answered) {
        proxyReq.destroy();
        return;
      }
      call.proxyReq = proxyReq;
    });
    proxy.on('proxyRes', (proxyRes, req, res) => {
      const call = calls.get(req);
      if (!call || call.answered) {
        proxyRes.destroy();
        return;
      }
      call.proxyRes = proxyRes;
      clearTimeout(call.timer);
      // The upstream died mid-body (after the status went out): cut the client's response too,
      // rather than leaving it waiting for bytes that will never come.
      proxyRes.once('close', () => {
        if (proxyRes.complete || call.answered) return;
        call.answered = true;
        metrics.errors.inc({ upstream: name, kind: 'connection_reset' });
        res.destroy();
      });
      settle(call, true);
      observe(proxyRes.statusCode ?? 0, (performance.now() - call.startedAt) / 1000);
      // Tell any buffering proxy in front of us (nginx ingress) to pass events through at once.
      if (proxyRes.headers['content-type']?.startsWith('text/event-stream')) res.setHeader('x-accel-buffering', 'no');
    });
    proxy.on('error', (error, req, res) => {
      const call = calls.get(req);
      if (!call) return;
      settle(call, false);
      const kind = errorKind(error as NodeJS.ErrnoException);
      fail(call, res as http.ServerResponse, kind, new AppError('bad_gateway', `${name} could not be reached`), error);
    });
    // The client hung up first: nothing to answer, and no verdict on the upstream.
    proxy.on('econnreset', (_error, req) => {
      const call = calls.get(req);
      if (call) settle(call, undefined);
    });
  };

  /** The half-open probe: `GET /health/ready` on the upstream, a request the gateway controls. */
  const probe = () => {
    const permit = breaker.acquire();
    if (permit !== 'probe') {
      if (permit) breaker.release(permit);
      return;
    }
    let judged = false;
    const verdict = (ok: boolean) => {
      if (judged) return;
      judged = true;
      if (ok) breaker.onSuccess(permit);
      else breaker.onFailure(permit);
    };
    const req = http.get(new URL('/health/ready', url), { agent, timeout: 2000 }, (res) => {
      res.resume();
      verdict(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out')));
    req.on('error', () => verdict(false));
  };

  const proxy = createProxyMiddleware({
    target: url,
    agent,
    changeOrigin: true,
    // The edge sets X-Forwarded-For to the one client address it decided; nothing is appended.
    xfwd: false,
    ejectPlugins: true,
    plugins: [events],
  });

  return {
    name,
    breaker,
    agent,
    /** Proxies `req` (whose `url` is already the upstream path) with a time-to-headers limit. */
    forward(req: http.IncomingMessage, res: http.ServerResponse, timeoutMs: number): void {
      const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
      // Client requests never probe a half-open circuit (a stalled body could hold the slot): the
      // gateway probes the upstream's readiness itself, and answers 503 until it has a verdict.
      const permit = breaker.acquire({ canProbe: false });
      if (!permit) {
        probe();
        metrics.errors.inc({ upstream: name, kind: 'circuit_open' });
        res.setHeader('retry-after', String(breaker.retryAfterSeconds));
        sendError(res, new AppError('service_unavailable', `${name} is unavailable, try again later`));
        return;
      }
      const call: Call = { permit, requestId: req.headers['x-request-id'], startedAt: performance.now(), answered: false, settled: false };
      calls.set(req, call);
      if (timeoutMs > 0) {
        call.timer = setTimeout(() => {
          if (call.proxyRes) return;
          if (hasBody && !req.complete) {
            // The client has not finished sending: its failure (408), no verdict on the upstream.
            settle(call, undefined);
            res.setHeader('connection', 'close');
            fail(call, res, 'client_body_timeout', new AppError('request_timeout', `The request body did not arrive within ${timeoutMs} ms`));
            return;
          }
          settle(call, false);
          fail(call, res, 'timeout', new AppError('gateway_timeout', `${name} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      res.once('close', () => {
        clearTimeout(call.timer);
        if (res.writableFinished) return;
        // The client went away mid-call or mid-stream (e.g. an SSE client closing the page).
        call.answered = true;
        settle(call, undefined);
        call.proxyReq?.destroy();
        call.proxyRes?.destroy();
      });
      void proxy(req, res, (error?: unknown) => {
        settle(call, false);
        fail(call, res, 'other', new AppError('bad_gateway', `${name} could not be reached`), error);
      });
    },
    close(): void {
      agent.destroy();
    },
  };
}

export type Upstream = ReturnType<typeof createUpstream>;
