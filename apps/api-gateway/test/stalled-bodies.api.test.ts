import net from 'node:net';
import request from 'supertest';
import type { RunningGateway } from '../src/main';
import { type Stub, bearer, closedPort, gatewayEnv, sleep, startGateway, startStub, tokens } from './helpers';

/**
 * Issue 14 item 2: a client that never finishes its request body is the client's failure. It gets
 * 408, the circuit breaker does not count it, and it cannot hold the half-open probe slot.
 * And item 12: with ADMIN_PORT, probes and metrics answer there only.
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
    gatewayEnv({ 'order-service': orders }, { TIMEOUT_ORDERS_MS: '300', CIRCUIT_FAILURE_THRESHOLD: '3', CIRCUIT_OPEN_MS: '500', RATE_LIMIT_ENABLED: 'false', ADMIN_PORT: String(await closedPort()) }),
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

test('when bodies stall past the timeout, then each client gets 408 and the circuit stays closed for everyone else', async () => {
  // Act: more stalled bodies than the breaker's failure threshold
  const answers = await Promise.all(Array.from({ length: 6 }, stalledPost));

  // Assert
  for (const line of answers) expect(line).toBe('HTTP/1.1 408 Request Timeout');
  expect(gateway.ctx.upstreams['order-service'].breaker.current).toBe('closed');
  expect((await placeOrder()).status).toBe(202);
});

test('when the circuit is half-open, then no client request takes the probe: the gateway probes readiness itself, and a stalled body cannot keep the circuit open', async () => {
  // Arrange: open the circuit for real (three upstream failures), then wait past CIRCUIT_OPEN_MS
  const breaker = gateway.ctx.upstreams['order-service'].breaker;
  for (let i = 0; i < 3; i++) breaker.onFailure(breaker.acquire());
  expect(breaker.current).toBe('open');
  await sleep(600);

  // Act: a stalled body arrives first
  const stalled = await stalledPost();

  // Assert: it was refused (503) and did not probe; the gateway's own probe closed the circuit
  expect(stalled).toBe('HTTP/1.1 503 Service Unavailable');
  await sleep(100);
  expect(breaker.current).toBe('closed');
  expect(orders.seen.some((s) => s.url === '/health/ready')).toBe(true);
  expect((await placeOrder()).status).toBe(202);
});

test('with ADMIN_PORT, probes and metrics answer on the admin port and 404 in the envelope on the public port', async () => {
  const admin = `http://127.0.0.1:${gateway.adminPort}`;

  for (const path of ['/health/ready', '/health/live', '/metrics']) {
    expect({ path, status: (await request(admin).get(path)).status }).toEqual({ path, status: 200 });
    const pub = await request(gateway.url).get(path);
    expect({ path, status: pub.status, code: pub.body.error?.code }).toEqual({ path, status: 404, code: 'not_found' });
  }
  expect((await request(admin).get('/metrics')).text).toContain('gateway_upstream_errors_total');
  expect((await request(admin).get('/api/products')).status).toBe(404);
});
