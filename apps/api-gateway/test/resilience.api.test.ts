import http from 'node:http';
import { Writable } from 'node:stream';
import request from 'supertest';
import type { RunningGateway } from '../src/main';
import { type Stub, bearer, closedPort, gatewayEnv, metricValue, sleep, startGateway, startStub, tokens } from './helpers';

const admin = bearer(tokens.admin);
let orders: Stub;
let events: Stub;
let products: Stub;
let releaseStream: () => void = () => undefined;
let gateway: RunningGateway;
let deadPort: number;

beforeAll(async () => {
  deadPort = await closedPort();
  [orders, events, products] = await Promise.all([
    startStub('order-service', (app) => {
      app.get('/orders/slow', (_req, res) => {
        setTimeout(() => res.json({ late: true }), 1500);
      });
      app.get('/orders/broken', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
        res.write('{"items": [');
        setTimeout(() => res.socket?.destroy(), 50);
      });
    }),
    startStub('event-bus', (app) => {
      // Sends one event at once, the next only when the test releases it: proves nothing is buffered.
      app.get('/orders/:id/events', (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write('event: status\ndata: {"status":"PENDING"}\n\n');
        releaseStream = () => {
          res.write('event: status\ndata: {"status":"CONFIRMED"}\n\n');
          res.end();
        };
      });
    }),
    startStub('product-service'),
  ]);
  gateway = await startGateway(
    gatewayEnv(
      { 'order-service': orders, 'event-bus': events, 'product-service': products },
      {
        PAYMENT_SERVICE_URL: `http://127.0.0.1:${deadPort}`,
        TIMEOUT_ORDERS_MS: '300',
        CIRCUIT_FAILURE_THRESHOLD: '1000',
        ALLOWED_ORIGINS: 'https://shop.example, https://admin.example',
      },
    ),
  );
});
afterAll(async () => {
  await gateway?.stop();
  await Promise.all([orders?.close(), events?.close(), products?.close()]);
});

const api = () => request(gateway.url);

describe('upstream failures', () => {
  it('when the upstream refuses connections, then 502 bad_gateway in the envelope, counted by kind', async () => {
    const res = await api().get('/api/payments?orderId=o1').set('authorization', admin);
    expect(res.status).toBe(502);
    expect(res.body).toEqual({ error: { code: 'bad_gateway', message: 'payment-service could not be reached' } });
    const text = (await api().get('/metrics')).text;
    expect(metricValue(text, 'gateway_upstream_errors_total', 'upstream="payment-service"', 'kind="connection_refused"')).toBeGreaterThanOrEqual(1);
  });

  it('when the upstream is slower than the route timeout, then 504 gateway_timeout without waiting for it', async () => {
    const started = Date.now();
    const res = await api().get('/api/orders/slow').set('authorization', admin);
    expect(res.status).toBe(504);
    expect(res.body.error.code).toBe('gateway_timeout');
    expect(Date.now() - started).toBeLessThan(1200);
    const text = (await api().get('/metrics')).text;
    expect(metricValue(text, 'gateway_upstream_errors_total', 'upstream="order-service"', 'kind="timeout"')).toBeGreaterThanOrEqual(1);
  });

  it('when the upstream dies mid-body, then the client connection is cut instead of hanging', async () => {
    const { port } = new URL(gateway.url);
    const outcome = await new Promise<string>((resolve) => {
      http
        .get({ host: '127.0.0.1', port, path: '/api/orders/broken', headers: { authorization: admin } }, (res) => {
          res.on('data', () => undefined);
          res.on('end', () => resolve(res.complete ? 'complete' : 'incomplete'));
          res.on('error', () => resolve('incomplete'));
        })
        .on('error', () => resolve('incomplete'));
    });
    expect(outcome).toBe('incomplete');
  });
});

describe('circuit breaker', () => {
  it('when an upstream fails N times in a row, then the circuit opens (503 without calling it), and the gateway’s own readiness probe after M ms closes it again', async () => {
    const port = await closedPort();
    const gw = await startGateway(gatewayEnv({}, { INVENTORY_SERVICE_URL: `http://127.0.0.1:${port}`, CIRCUIT_FAILURE_THRESHOLD: '2', CIRCUIT_OPEN_MS: '400' }));
    try {
      const get = () => request(gw.url).get('/api/inventory/p1');
      expect((await get()).status).toBe(502);
      expect((await get()).status).toBe(502);

      const open = await get();
      expect(open.status).toBe(503);
      expect(open.body.error.code).toBe('service_unavailable');
      expect(Number(open.headers['retry-after'])).toBeGreaterThanOrEqual(1);

      // The upstream comes back on the same port; while open, it is still not called.
      const revived = await startStub('inventory-service', undefined, port);
      try {
        expect((await get()).status).toBe(503);
        expect(revived.seen).toHaveLength(0);

        await sleep(450);
        // Half-open: no client request is the probe. The first one after M ms starts the gateway's
        // own probe (GET /health/ready on the upstream) and is answered 503; its success closes the circuit.
        expect((await get()).status).toBe(503);
        await sleep(100);
        expect((await get()).status).toBe(200);
        expect(revived.seen.map((s) => s.url)).toEqual(['/health/ready', '/inventory/p1']);
        const text = (await request(gw.url).get('/metrics')).text;
        expect(metricValue(text, 'gateway_circuit_state', 'upstream="inventory-service"')).toBe(0);
        expect(metricValue(text, 'gateway_upstream_errors_total', 'upstream="inventory-service"', 'kind="circuit_open"')).toBe(3);
      } finally {
        await revived.close();
      }
    } finally {
      await gw.stop();
    }
  });
});

describe('request body limit (1 MiB)', () => {
  const rawPost = (headers: http.OutgoingHttpHeaders, write: (req: http.ClientRequest) => void) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const { port } = new URL(gateway.url);
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/api/orders', headers: { authorization: admin, 'content-type': 'application/json', ...headers } }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      // The gateway may close the connection while we are still sending: that is expected.
      req.on('error', (error: NodeJS.ErrnoException) => (['EPIPE', 'ECONNRESET'].includes(error.code ?? '') ? undefined : reject(error)));
      write(req);
    });

  it('when content-length is over 1 MiB, then 413 before anything reaches the upstream', async () => {
    const before = orders.seen.length;
    const res = await rawPost({ 'content-length': 1024 * 1024 + 1 }, (req) => req.end(Buffer.alloc(1024 * 1024 + 1, 0x20)));
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.code).toBe('payload_too_large');
    expect(orders.seen.length).toBe(before);
  });

  it('when a chunked body streams past 1 MiB, then 413 and the upstream never gets the whole body', async () => {
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const res = await rawPost({ 'transfer-encoding': 'chunked' }, (req) => {
      let sent = 0;
      const pump = () => {
        while (sent < 32 && req.write(chunk)) sent++;
        if (sent < 32) req.once('drain', pump);
        else req.end();
      };
      pump();
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body).error.code).toBe('payload_too_large');
    expect(orders.seen.at(-1)!.bytes).toBeLessThanOrEqual(1024 * 1024 + chunk.length);
  });

  it('when a body is just under the limit, then it is streamed through whole', async () => {
    const body = Buffer.alloc(1024 * 1024, 0x20);
    const res = await rawPost({ 'content-length': body.length }, (req) => req.end(body));
    expect(res.status).toBe(200);
    expect(orders.seen.at(-1)!.bytes).toBe(body.length);
  });
});

describe('Server-Sent Events', () => {
  it('when the event-bus streams, then the client gets the first event before the upstream ends the stream', async () => {
    const { port } = new URL(gateway.url);
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/api/orders/o1/events', headers: { authorization: admin, accept: 'text/event-stream' } }, resolve).on('error', reject);
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/event-stream');
    res.setEncoding('utf8');

    const first = await new Promise<string>((resolve) => res.once('data', resolve));
    expect(first).toContain('"PENDING"');
    expect(res.complete).toBe(false); // the upstream has not ended the stream yet

    let rest = '';
    res.on('data', (c) => (rest += c));
    const ended = new Promise((resolve) => res.on('end', resolve));
    releaseStream();
    await ended;
    expect(rest).toContain('"CONFIRMED"');
  });
});

describe('CORS', () => {
  const preflight = (origin: string) =>
    api().options('/api/orders').set('origin', origin).set('access-control-request-method', 'POST').set('access-control-request-headers', 'authorization,content-type');

  it('when an allowed origin sends a preflight, then it is answered with that origin allowed', async () => {
    const res = await preflight('https://shop.example');
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://shop.example');
    expect(res.headers['access-control-allow-methods']).toContain('POST');
    expect(res.headers['access-control-allow-headers']).toContain('authorization');
  });

  it('when another origin sends a preflight, then no CORS header allows it', async () => {
    const res = await preflight('https://evil.example');
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('when an allowed origin makes a request, then the response allows it and exposes x-request-id', async () => {
    const res = await api().get('/api/products').set('origin', 'https://admin.example');
    expect(res.status).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe('https://admin.example');
    expect(res.headers['access-control-expose-headers']).toContain('x-request-id');
    expect(res.headers['x-content-type-options']).toBe('nosniff'); // security headers (helmet)
  });
});

describe('log lines', () => {
  it('when requests fail on either path, then each line names its request id (the gateway keeps no async log context)', async () => {
    const lines: Record<string, unknown>[] = [];
    const logDestination = new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(chunk.toString())), done()) });
    const logged = await startGateway(gatewayEnv({ 'product-service': products }, { LOG_LEVEL: 'info', PAYMENT_SERVICE_URL: `http://127.0.0.1:${deadPort}` }), { logDestination });
    try {
      const send = (path: string, id: string, headers: Record<string, string> = {}) => {
        const req = request(logged.url).get(path).set('x-request-id', id);
        for (const [name, value] of Object.entries(headers)) req.set(name, value);
        return req;
      };
      expect((await send('/api/payments?orderId=o1', 'req-502', { authorization: admin })).status).toBe(502); // hot path, upstream refused
      expect((await send('/api/orders', 'req-401')).status).toBe(401); // hot path, edge
      expect((await send('/api/orders', 'req-401-browser', { origin: 'https://shop.example' })).status).toBe(401); // express path
      expect((await send('/api/nothing-here', 'req-404')).status).toBe(404); // express path, no route
      const idsOf = (match: (line: Record<string, unknown>) => boolean) => lines.filter(match).map((l) => l.requestId);
      expect(idsOf((l) => l.kind === 'connection_refused')).toEqual(['req-502']);
      expect(idsOf((l) => l.status === 401)).toEqual(['req-401', 'req-401-browser']);
      expect(idsOf((l) => l.status === 404)).toEqual(['req-404']);
    } finally {
      await logged.stop();
    }
  });
});
