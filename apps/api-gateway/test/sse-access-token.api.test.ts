import { Writable } from 'node:stream';
import request from 'supertest';
import type { RunningGateway } from '../src/main';
import { type Stub, gatewayEnv, startGateway, startStub, tokens } from './helpers';

/**
 * Issue 14 item 6 (gateway half): a browser's EventSource cannot send headers, so the order-status
 * stream accepts `?access_token=`; the token becomes the upstream's Authorization header, leaves the
 * URL, and is never logged. No other route takes it. Item 12: a wrong method on a public auth route
 * is not an authentication failure.
 */
let events: Stub;
let orders: Stub;
let users: Stub;
let gateway: RunningGateway;
const lines: string[] = [];

beforeAll(async () => {
  [events, orders, users] = await Promise.all([startStub('event-bus'), startStub('order-service'), startStub('user-service', (app) => app.all('/auth/login', (req, res, next) => (req.method === 'POST' ? next() : res.status(404).json({ error: { code: 'not_found', message: 'No route' } }))))]);
  const logDestination = new Writable({ write: (chunk, _encoding, done) => (lines.push(chunk.toString()), done()) });
  gateway = await startGateway(gatewayEnv({ 'event-bus': events, 'order-service': orders, 'user-service': users }, { LOG_LEVEL: 'debug' }), { logDestination });
});
afterAll(async () => {
  await gateway?.stop();
  await Promise.all([events?.close(), orders?.close(), users?.close()]);
});

test('when the status stream is opened with ?access_token=, then the upstream gets it as a bearer token and a URL without it', async () => {
  const res = await request(gateway.url).get(`/api/orders/0b6a1c52-8a8e-4d3f-9a51-0f0d6b1d2c3e/events?access_token=${tokens.customer}&x=1`);

  expect(res.status).toBe(200);
  const seen = events.seen.at(-1)!;
  expect(seen.url).toBe('/orders/0b6a1c52-8a8e-4d3f-9a51-0f0d6b1d2c3e/events?x=1');
  expect(seen.headers.authorization).toBe(`Bearer ${tokens.customer}`);
});

test('when a bad access_token is sent, then the answer is 401 and no log line contains the token', async () => {
  const forged = `${tokens.customer.slice(0, -6)}AAAAAA`;

  const res = await request(gateway.url).get(`/api/orders/0b6a1c52-8a8e-4d3f-9a51-0f0d6b1d2c3e/events?access_token=${forged}`);

  expect(res.status).toBe(401);
  expect(res.body.error.code).toBe('unauthorized');
  expect(lines.length).toBeGreaterThan(0);
  expect(lines.filter((l) => l.includes(forged.slice(-40)) || l.includes(tokens.customer.slice(-40)))).toEqual([]);
});

test('when another route gets ?access_token=, then it authenticates nothing', async () => {
  const res = await request(gateway.url).get(`/api/orders?access_token=${tokens.customer}`);

  expect(res.status).toBe(401);
  expect(orders.seen).toHaveLength(0);
});

test('when a public auth route is called with a method it does not have, then it is 404 from the service, not 401', async () => {
  const res = await request(gateway.url).delete('/api/auth/login');

  expect(res.status).toBe(404);
  expect(res.body.error.code).toBe('not_found');
});
