import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import express from 'express';
import { TEST_JWT_KEYS, TEST_REDIS_URL, signTestToken, testEnv } from '@cloudretail/testing';
import { type RunningGateway, start } from '../src/main';
import { UPSTREAMS, type UpstreamName } from '../src/routes';

const auth = { sign: signTestToken };
export const ids = { customer: randomUUID(), admin: randomUUID() };
export const tokens = {
  customer: auth.sign({ userId: ids.customer, role: 'customer' }),
  admin: auth.sign({ userId: ids.admin, role: 'admin' }),
};
export const bearer = (token: string) => `Bearer ${token}`;
export const sign = (userId: string, role: 'customer' | 'admin' = 'customer') => auth.sign({ userId, role });

/** What a stub upstream saw of one request. */
export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bytes: number;
}

export interface Stub {
  name: string;
  url: string;
  seen: Seen[];
  server: http.Server;
  close: () => Promise<void>;
}

/**
 * A stand-in upstream on port 0. It reads the whole body (counting bytes) and answers
 * `{upstream, method, url, headers}`; `extra` routes come first (slow answers, SSE, OpenAPI).
 */
export async function startStub(name: string, extra?: (app: express.Express, seen: Seen[]) => void, port = 0): Promise<Stub> {
  const seen: Seen[] = [];
  const app = express();
  app.use((req, _res, next) => {
    const entry: Seen = { method: req.method, url: req.url, headers: req.headers, bytes: 0 };
    seen.push(entry);
    req.on('data', (chunk: Buffer) => (entry.bytes += chunk.length));
    next();
  });
  extra?.(app, seen);
  app.use((req, res) => {
    req.resume();
    req.on('end', () => res.json({ upstream: name, method: req.method, url: req.url, headers: req.headers }));
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    name,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound once, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export const ENV_OF: Record<UpstreamName, string> = {
  'user-service': 'USER_SERVICE_URL',
  'product-service': 'PRODUCT_SERVICE_URL',
  'order-service': 'ORDER_SERVICE_URL',
  'inventory-service': 'INVENTORY_SERVICE_URL',
  'payment-service': 'PAYMENT_SERVICE_URL',
  'event-bus': 'EVENT_BUS_URL',
};

/** Environment pointing every upstream at a stub; rate limits use a key prefix of their own. */
export function gatewayEnv(stubs: Partial<Record<UpstreamName, { url: string }>>, overrides: Record<string, string> = {}): Record<string, string> {
  const upstreams = Object.fromEntries(UPSTREAMS.filter((u) => stubs[u]).map((u) => [ENV_OF[u], stubs[u]!.url]));
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    PORT: '0',
    REDIS_URL: TEST_REDIS_URL,
    JWT_PUBLIC_KEY: TEST_JWT_KEYS.publicKey,
    SHUTDOWN_DELAY_MS: '0',
    SHUTDOWN_TIMEOUT_MS: '1000',
    RATE_LIMIT_KEY_PREFIX: `test:gateway:${randomUUID()}`,
    ...upstreams,
    ...overrides,
  };
}

export const startGateway = (env: Record<string, string>, options?: Parameters<typeof start>[1]): Promise<RunningGateway> => start(env, options);

/** One stub per upstream, each answering with its own name. */
export async function startAllStubs(): Promise<Record<UpstreamName, Stub>> {
  const stubs = await Promise.all(UPSTREAMS.map((name) => startStub(name)));
  return Object.fromEntries(stubs.map((s) => [s.name, s])) as Record<UpstreamName, Stub>;
}

type ProductService = { url: string; stop: () => Promise<void> };
/**
 * The real product-service, in-process. Loaded through a computed path at run time: apps never
 * import each other's code statically (the lint boundary), but a component test may start one.
 */
export function startProductService(databaseUrl: string): Promise<ProductService> {
  const main = require(path.join(__dirname, '../../product-service/src/main')) as { start: (env: Record<string, string>) => Promise<ProductService> };
  return main.start(testEnv(databaseUrl));
}

/** Reads a metric sample value from Prometheus text (first line that matches all of `parts`). */
export function metricValue(text: string, name: string, ...parts: string[]): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(name) && !l.startsWith('#') && parts.every((p) => l.includes(p)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
