import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { createTerminus } from '@godaddy/terminus';
import { type Check, probes } from '@cloudretail/health';
import type { Logger } from '@cloudretail/logging';

/** A resource to close on shutdown. Closers run in the order given: consumers, producers, Redis, DB. */
export interface Closer {
  name: string;
  close: () => unknown;
}

/**
 * Runs `job` every `intervalMs` (and at once with `immediately`) without keeping the process alive,
 * never two runs at once in this process. The closer stops the timer and waits for a run in
 * progress, so a job is not cut off by the pool closing after it. `job` handles its own errors.
 */
export function repeat(name: string, intervalMs: number, job: () => Promise<void>, { immediately = false } = {}): Closer {
  let running: Promise<void> | undefined;
  const run = () => {
    running ??= job().finally(() => {
      running = undefined;
    });
  };
  const timer = setInterval(run, intervalMs);
  timer.unref();
  if (immediately) run();
  return {
    name,
    async close() {
      clearInterval(timer);
      await running;
    },
  };
}

export interface ServeOptions {
  app: http.RequestListener;
  port: number;
  host?: string;
  logger: Logger;
  /** Readiness checks (Postgres, Redis, the event transport). */
  checks?: Check[];
  checkTimeoutMs?: number;
  /** After SIGTERM, readiness is 503 for this long before the listener closes (see preStop). */
  delayMs?: number;
  /** In-flight requests get this long to finish once draining starts; then sockets are destroyed and the exit code is 1. */
  timeoutMs?: number;
  closers?: Closer[];
  /** Each closer gets this long; one that takes longer is logged and skipped (exit code 1). */
  closeTimeoutMs?: number;
}

export interface RunningServer {
  server: http.Server;
  port: number;
  url: string;
  isShuttingDown: () => boolean;
  /** The same drain-and-close sequence as SIGTERM (without the delay), without exiting the process. */
  stop: () => Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Closes each in order, each given at most `closeTimeoutMs`: a closer stuck on a dependency that
 * is down (a consumer waiting for Redis) must not keep the ones after it (the pool) open, nor
 * hold the process until the orchestrator kills it. A closer that times out counts as failed.
 */
async function closeAll(closers: Closer[], logger: Logger, closeTimeoutMs: number): Promise<boolean> {
  let clean = true;
  for (const { name, close } of closers) {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`did not close within ${closeTimeoutMs} ms; left behind`)), closeTimeoutMs);
    });
    try {
      await Promise.race([Promise.resolve().then(close), deadline]);
      logger.info({ resource: name }, 'shutdown: closed');
    } catch (error) {
      clean = false;
      logger.error({ resource: name, err: error }, 'shutdown: close failed');
    } finally {
      clearTimeout(timer);
    }
  }
  return clean;
}

/**
 * Listens and wires health probes and graceful shutdown (terminus). On SIGTERM/SIGINT: readiness
 * goes 503 at once; after `delayMs` the listener closes (new connections are refused); in-flight
 * requests finish up to `timeoutMs`; closers run in order; the process exits 0, or 1 when the
 * deadline was hit or a closer failed.
 */
export async function serve({
  app,
  port,
  host = '0.0.0.0',
  logger,
  checks = [],
  checkTimeoutMs = 1000,
  delayMs = 5000,
  timeoutMs = 20000,
  closers = [],
  closeTimeoutMs = 5000,
}: ServeOptions): Promise<RunningServer> {
  let shuttingDown = false;
  let started = false;
  let drainStartedAt = 0;
  let forced = false;

  const server = http.createServer(app);
  // A response written while shutting down tells keep-alive clients to reconnect elsewhere.
  server.prependListener('request', (_req, res) => {
    if (shuttingDown) res.setHeader('connection', 'close');
  });
  server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts

  const before = { SIGTERM: process.listeners('SIGTERM'), SIGINT: process.listeners('SIGINT') };
  createTerminus(server, {
    signals: ['SIGINT'],
    healthChecks: probes({ checks, timeoutMs: checkTimeoutMs, isStarted: () => started, isShuttingDown: () => shuttingDown }),
    timeout: timeoutMs,
    logger: (message, error) => logger.warn({ err: error }, message),
    beforeShutdown: async () => {
      shuttingDown = true;
      logger.info({ delayMs }, 'shutdown: readiness is 503, waiting for load balancers');
      await sleep(delayMs);
      drainStartedAt = Date.now();
      logger.info({ timeoutMs }, 'shutdown: listener closed, draining in-flight requests');
    },
    onSignal: async () => {
      forced = Date.now() - drainStartedAt >= timeoutMs;
      if (forced) logger.error({ timeoutMs }, 'shutdown: deadline hit, open connections were destroyed');
      if (!(await closeAll(closers, logger, closeTimeoutMs))) forced = true;
    },
    onShutdown: async () => {
      logger.info({ exitCode: forced ? 1 : 0 }, 'shutdown: done');
      process.exit(forced ? 1 : 0);
    },
  });
  const added = {
    SIGTERM: process.listeners('SIGTERM').filter((l) => !before.SIGTERM.includes(l)),
    SIGINT: process.listeners('SIGINT').filter((l) => !before.SIGINT.includes(l)),
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  started = true;
  const bound = (server.address() as AddressInfo).port;
  logger.info({ port: bound }, 'listening');

  return {
    server,
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    isShuttingDown: () => shuttingDown,
    async stop() {
      if (shuttingDown) return;
      shuttingDown = true;
      for (const signal of ['SIGTERM', 'SIGINT'] as const) added[signal].forEach((l) => process.removeListener(signal, l));
      await promisify((server as http.Server & { stop: (cb: (e?: Error) => void) => void }).stop)();
      await closeAll(closers, logger, closeTimeoutMs);
    },
  };
}
