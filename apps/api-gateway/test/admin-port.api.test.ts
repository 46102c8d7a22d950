import http from 'node:http';
import { loadConfig } from '@cloudretail/config';
import { TEST_JWT_KEYS } from '@cloudretail/testing';
import request from 'supertest';
import { configSchema } from '../src/config';
import type { RunningGateway } from '../src/main';
import { type Stub, bearer, gatewayEnv, startGateway, startStub, tokens } from './helpers';

/**
 * Issue 14 item 12: the probes and the metrics are not for the internet. They answer on ADMIN_PORT
 * (default 9080; 0 in tests: any free port) and 404 in the envelope on the public port, in every
 * spelling express would otherwise route. Readiness keeps its meaning (503 once shutdown begins).
 */
let orders: Stub;
let gateway: RunningGateway;

beforeAll(async () => {
  orders = await startStub('order-service', (app) => app.get('/orders/slow', (_req, res) => void setTimeout(() => res.json({ slow: true }), 600)));
  gateway = await startGateway(gatewayEnv({ 'order-service': orders }));
});
afterAll(async () => {
  await gateway?.stop();
  await orders?.close();
});

test('ADMIN_PORT defaults to 9080', () => {
  expect(loadConfig(configSchema, { JWT_PUBLIC_KEY: TEST_JWT_KEYS.publicKey }).ADMIN_PORT).toBe(9080);
});

test('probes and metrics answer on the admin port', async () => {
  expect(gateway.adminPort).not.toBe(gateway.port);
  for (const path of ['/health/live', '/health/ready', '/health/startup', '/metrics']) {
    expect({ path, status: (await request(gateway.adminUrl).get(path)).status }).toEqual({ path, status: 200 });
  }
  expect((await request(gateway.adminUrl).get('/metrics')).text).toContain('gateway_upstream_errors_total');
});

test.each(['/metrics', '/metrics/', '/METRICS', '/Metrics?x=1', '/health/ready', '/health/live', '/health/startup', '/health/ready/', '/HEALTH/READY', '/health'])(
  'on the public port, GET %s is 404 in the envelope',
  async (path) => {
    const res = await request(gateway.url).get(path);

    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    expect(res.text).not.toContain('gateway_');
  },
);

test('the admin port serves nothing else: the API stays on the public port', async () => {
  const res = await request(gateway.adminUrl).get('/api/orders').set('authorization', bearer(tokens.customer));

  expect(res.status).toBe(404);
  expect(res.body.error.code).toBe('not_found');
  expect(orders.seen).toHaveLength(0);
});

test('when the admin port is taken, then start-up fails naming ADMIN_PORT', async () => {
  await expect(startGateway(gatewayEnv({}, { ADMIN_PORT: String(gateway.adminPort) }))).rejects.toThrow(/ADMIN_PORT/);
});

test('once shutdown begins, readiness on the admin port is 503 while in-flight requests drain', async () => {
  const own = await startGateway(gatewayEnv({ 'order-service': orders }, { SHUTDOWN_TIMEOUT_MS: '3000' }));
  const inFlight = new Promise<number>((resolve, reject) => {
    const { port } = new URL(own.url);
    http.get({ host: '127.0.0.1', port, path: '/api/orders/slow', headers: { authorization: bearer(tokens.customer) } }, (res) => (res.resume(), resolve(res.statusCode ?? 0))).on('error', reject);
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect((await request(own.adminUrl).get('/health/ready')).status).toBe(200);

  const stopping = own.stop();
  const ready = await request(own.adminUrl).get('/health/ready');

  expect(ready.status).toBe(503);
  expect(await inFlight).toBe(200);
  await stopping;
});
