import net from 'node:net';
import request from 'supertest';
import { eventually } from '@cloudretail/testing';
import type { RunningGateway } from '../src/main';
import { type Stub, bearer, gatewayEnv, metricValue, sleep, startGateway, startStub, tokens } from './helpers';

/**
 * Issue 14 item 2: a client that never finishes its request body is the client's failure. The body
 * is received before any upstream is involved, so a stalled one gets 408 after BODY_TIMEOUT_MS,
 * holds no upstream connection, is never counted by the circuit breaker and can never be its probe.
 */
const customer = bearer(tokens.customer);
let orders: Stub;
let gateway: RunningGateway;

beforeAll(async () => {
  orders = await startStub('order-service', (app) => {
    app.get('/health/ready', (_req, res) => res.json({ status: 'ok' }));
    app.post('/orders', (req, res) => {
      req.resume();
      req.on('end', () => res.status(202).json({ ok: true }));
    });
  });
  gateway = await startGateway(
    gatewayEnv(
      { 'order-service': orders },
      // Two upstream connections only: stalled bodies must not be able to take them.
      { BODY_TIMEOUT_MS: '400', TIMEOUT_ORDERS_MS: '400', CIRCUIT_FAILURE_THRESHOLD: '3', CIRCUIT_OPEN_MS: '500', UPSTREAM_MAX_SOCKETS: '2', RATE_LIMIT_ENABLED: 'false' },
    ),
  );
});
afterAll(async () => {
  await gateway?.stop();
  await orders?.close();
});

/** A POST that announces 100 bytes, sends 10 and then nothing; resolves with the status line the gateway answered. */
function stalledPost(): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(gateway.port, '127.0.0.1', () => {
      socket.write(`POST /api/orders HTTP/1.1\r\nhost: x\r\nauthorization: ${customer}\r\nidempotency-key: k\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"items":[`);
    });
    let answer = '';
    socket.on('data', (d) => {
      answer += d;
      if (answer.includes('\r\n\r\n')) {
        resolve(answer.split('\r\n')[0]);
        socket.destroy();
      }
    });
    socket.on('error', reject);
    setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer to a stalled body within 5 s'));
    }, 5000);
  });
}

const placeOrder = () => request(gateway.url).post('/api/orders').set('authorization', customer).set('idempotency-key', 'k').send({ items: [] });
const stalledSeenByUpstream = () => orders.seen.filter((s) => s.method === 'POST' && s.bytes < 100 && s.headers['content-length'] === '100').length;

test('when more bodies stall than the breaker threshold and the connection pool, then other clients keep getting answers, each stalled client gets 408, and the circuit stays closed', async () => {
  // Act: eight stalled bodies (threshold 3, two upstream connections), and other clients meanwhile
  const stalled = Promise.all(Array.from({ length: 8 }, stalledPost));
  await sleep(50);
  const during = await Promise.all([placeOrder(), placeOrder(), request(gateway.url).get('/api/orders').set('authorization', customer)]);
  const answers = await stalled;

  // Assert
  expect(during.map((r) => r.status)).toEqual([202, 202, 200]);
  for (const line of answers) expect(line).toBe('HTTP/1.1 408 Request Timeout');
  expect(gateway.ctx.upstreams['order-service'].breaker.current).toBe('closed');
  expect(stalledSeenByUpstream()).toBe(0); // no upstream connection was held for them
  expect((await placeOrder()).status).toBe(202);
  const text = (await request(gateway.adminUrl).get('/metrics')).text;
  expect(metricValue(text, 'gateway_upstream_errors_total', 'upstream="order-service"', 'kind="client_body_timeout"')).toBe(8);
  expect(metricValue(text, 'gateway_upstream_errors_total', 'upstream="order-service"', 'kind="timeout"')).toBeUndefined();
});

test('when the circuit is open and a stalled body arrives every 100 ms, then the gateway’s own readiness probe still closes it after CIRCUIT_OPEN_MS', async () => {
  // Arrange: open the circuit (three upstream failures)
  const breaker = gateway.ctx.upstreams['order-service'].breaker;
  for (let i = 0; i < 3; i++) breaker.onFailure(breaker.acquire());
  expect(breaker.current).toBe('open');
  const probesBefore = orders.seen.filter((s) => s.url === '/health/ready').length;

  // Act: a stalled body every 100 ms for 1.2 s, well past CIRCUIT_OPEN_MS (500)
  const stalled: Promise<string>[] = [];
  for (let i = 0; i < 12; i++) {
    stalled.push(stalledPost());
    await sleep(100);
  }

  // Assert: closed by the gateway's probe while the stalled bodies kept coming; each of them got 408
  expect(breaker.current).toBe('closed');
  expect(orders.seen.filter((s) => s.url === '/health/ready').length).toBe(probesBefore + 1);
  for (const line of await Promise.all(stalled)) expect(line).toBe('HTTP/1.1 408 Request Timeout');
  expect((await placeOrder()).status).toBe(202);
});

test('when a body arrives slowly but within BODY_TIMEOUT_MS, then it reaches the upstream whole', async () => {
  const status = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(gateway.port, '127.0.0.1', () => {
      socket.write(`POST /api/orders HTTP/1.1\r\nhost: x\r\nauthorization: ${customer}\r\nidempotency-key: k\r\ncontent-type: application/json\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{"items":`);
      setTimeout(() => socket.write('[]}'), 150);
    });
    let answer = '';
    socket.on('data', (d) => (answer += d));
    socket.on('end', () => resolve(answer.split('\r\n')[0]));
    socket.on('error', reject);
    setTimeout(() => (socket.destroy(), reject(new Error(`no complete answer within 3 s: ${answer.split('\r\n')[0]}`))), 3000);
  });

  expect(status).toBe('HTTP/1.1 202 Accepted');
  await eventually(() => expect(orders.seen.at(-1)).toMatchObject({ method: 'POST', url: '/orders', bytes: 12 }));
});
