import request from 'supertest';
import { build, createTestDatabase, unique } from '@cloudretail/testing';
import type { RunningGateway } from '../src/main';
import { type Stub, bearer, gatewayEnv, metricValue, startGateway, startProductService, startStub, tokens } from './helpers';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let product: Awaited<ReturnType<typeof startProductService>>;
let stubs: Record<'user-service' | 'order-service' | 'inventory-service' | 'payment-service' | 'event-bus', Stub>;
let gateway: RunningGateway;

const userDoc = {
  openapi: '3.0.3',
  info: { title: 'user-service', version: '1.0.0' },
  paths: {
    '/auth/login': { post: { summary: 'Log in', responses: { 200: { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Session' } } } } } } },
    '/users/me': { get: { summary: 'Me', responses: { 200: { description: 'ok' } } } },
    '/internal/cleanup': { post: { summary: 'Not routed by the gateway', responses: { 204: { description: 'ok' } } } },
  },
  components: { schemas: { Session: { type: 'object', properties: { token: { type: 'string' } } } } },
};
const orderDoc = {
  openapi: '3.0.3',
  info: { title: 'order-service', version: '1.0.0' },
  paths: { '/orders': { get: { summary: 'My orders', responses: { 200: { description: 'ok', content: { 'application/json': { schema: { $ref: '#/components/schemas/Session' } } } } } } } },
  // Same name as user-service's schema, different shape: must not overwrite it.
  components: { schemas: { Session: { type: 'object', properties: { orderId: { type: 'string' } } } } },
};

beforeAll(async () => {
  db = await createTestDatabase('gateway');
  product = await startProductService(db.url);
  const [user, order, inventory, payment, events] = await Promise.all([
    startStub('user-service', (app) => app.get('/openapi.json', (_req, res) => res.json(userDoc))),
    startStub('order-service', (app) => app.get('/openapi.json', (_req, res) => res.json(orderDoc))),
    startStub('inventory-service'),
    startStub('payment-service'),
    startStub('event-bus', (app) => app.get('/openapi.json', (_req, res) => res.status(503).json({ error: { code: 'service_unavailable', message: 'down' } }))),
  ]);
  stubs = { 'user-service': user, 'order-service': order, 'inventory-service': inventory, 'payment-service': payment, 'event-bus': events };
  gateway = await startGateway(gatewayEnv({ ...stubs, 'product-service': product }));
});

afterAll(async () => {
  await gateway?.stop();
  await product?.stop();
  await Promise.all(Object.values(stubs ?? {}).map((s) => s.close()));
  await db?.drop();
});

const api = () => request(gateway.url);
const admin = bearer(tokens.admin);

describe('routing', () => {
  it('when an admin creates and then reads a product through the gateway, then the real product-service serves both', async () => {
    const input = build.product({ category: unique('gateway') });
    const created = await api().post('/api/products').set('authorization', admin).send(input);
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ sku: input.sku, priceCents: input.priceCents });

    const read = await api().get(`/api/products/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
    const list = await api().get('/api/products').query({ category: input.category, limit: 5 });
    expect(list.status).toBe(200);
    expect(list.body.items.map((p: { id: string }) => p.id)).toEqual([created.body.id]);
  });

  it('when product-service answers an error, then its envelope reaches the client unchanged', async () => {
    const res = await api().get('/api/products/7d7e2c43-3d44-4f1c-9a4a-3d5c5c7e0000');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it.each([
    ['POST', '/api/auth/login', 'user-service', '/auth/login'],
    ['GET', '/api/users/me', 'user-service', '/users/me'],
    ['GET', '/api/inventory/abc', 'inventory-service', '/inventory/abc'],
    ['POST', '/api/orders', 'order-service', '/orders'],
    ['GET', '/api/orders/abc?x=1', 'order-service', '/orders/abc?x=1'],
    ['POST', '/api/orders/abc/cancel', 'order-service', '/orders/abc/cancel'],
    ['GET', '/api/orders/abc/events', 'event-bus', '/orders/abc/events'],
    ['GET', '/api/payments?orderId=abc', 'payment-service', '/payments?orderId=abc'],
    ['POST', '/api/payments/abc/refund', 'payment-service', '/payments/abc/refund'],
  ])('%s %s goes to %s as %s (the /api prefix stripped)', async (method, path, upstream, upstreamPath) => {
    const res = await api()[method.toLowerCase() as 'get' | 'post'](path).set('authorization', admin).send(method === 'POST' ? { a: 1 } : undefined);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ upstream, method, url: upstreamPath });
  });

  it('when a JSON body is posted, then it reaches the upstream byte for byte (streamed, not re-encoded)', async () => {
    const raw = '{"items":[{"productId":"p1","quantity":2}],  "note":"spacing kept"}';
    const res = await api().post('/api/orders').set('authorization', admin).set('content-type', 'application/json').send(raw);
    expect(res.status).toBe(200);
    expect(stubs['order-service'].seen.at(-1)!.bytes).toBe(Buffer.byteLength(raw));
  });

  it('when the path matches no route group, then 404 in the error envelope and no upstream is called', async () => {
    const before = Object.values(stubs).reduce((n, s) => n + s.seen.length, 0);
    const res = await api().get('/api/nothing-here').set('authorization', admin);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
    expect(Object.values(stubs).reduce((n, s) => n + s.seen.length, 0)).toBe(before);
  });
});

describe('request id', () => {
  it('when the client sends x-request-id, then it is echoed and forwarded to the upstream', async () => {
    const res = await api().get('/api/users/me').set('authorization', admin).set('x-request-id', 'client-req-42');
    expect(res.headers['x-request-id']).toBe('client-req-42');
    expect(res.body.headers['x-request-id']).toBe('client-req-42');
  });

  it('when the client sends none, then one is generated, returned and forwarded', async () => {
    const res = await api().get('/api/users/me').set('authorization', admin);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.headers['x-request-id']).toBe(res.headers['x-request-id']);
  });
});

describe('forwarding', () => {
  it('when a request is proxied, then the upstream gets its own host and x-forwarded-for/proto/host, but not the client hop-by-hop headers', async () => {
    const res = await api()
      .get('/api/users/me')
      .set('authorization', admin)
      .set('connection', 'close')
      .set('keep-alive', 'timeout=5')
      .set('proxy-connection', 'keep-alive')
      .set('x-forwarded-for', '203.0.113.7');
    expect(res.status).toBe(200);
    const seen = res.body.headers;
    expect(seen.host).toBe(new URL(stubs['user-service'].url).host);
    // exactly one address, the one the gateway decided: the client's own claim is dropped
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe(new URL(gateway.url).host);
    expect(seen).not.toHaveProperty('keep-alive');
    expect(seen).not.toHaveProperty('proxy-connection');
    expect(seen.connection).not.toBe('close'); // the pooled upstream socket stays open
  });

  it('when the same request comes from a browser (Origin, through express and CORS) or not (the hot path), then both answers carry the same headers and are metered', async () => {
    const plain = await api().get('/api/users/me').set('authorization', admin);
    const browser = await api().get('/api/users/me').set('authorization', admin).set('origin', 'https://unknown.example');
    for (const res of [plain, browser]) {
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ upstream: 'user-service', url: '/users/me' });
      expect(res.headers['x-content-type-options']).toBe('nosniff'); // security headers (helmet)
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number(res.headers['ratelimit-limit'])).toBeGreaterThan(0);
    }
    const text = (await api().get('/metrics')).text;
    expect(metricValue(text, 'http_requests_total', 'route="/api/users"', 'status="200"')).toBeGreaterThanOrEqual(2);
  });

  it('when the gateway answers itself on the hot path (401), then it is the error envelope with security headers', async () => {
    const res = await api().get('/api/users/me');
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });
});

describe('identity headers', () => {
  it('when a customer forges x-user-id / x-user-role / x-forwarded-user, then the upstream sees none of them, only the token', async () => {
    const res = await api()
      .get('/api/users/me')
      .set('authorization', bearer(tokens.customer))
      .set('x-user-id', 'someone-else')
      .set('x-user-role', 'admin')
      .set('x-forwarded-user', 'admin@example.com')
      .set('x-auth-request-email', 'admin@example.com')
      .set('remote-user', 'admin');
    expect(res.status).toBe(200);
    const seen = res.body.headers;
    for (const forged of ['x-user-id', 'x-user-role', 'x-forwarded-user', 'x-auth-request-email', 'remote-user']) expect(seen).not.toHaveProperty(forged);
    expect(seen.authorization).toBe(bearer(tokens.customer));
  });

  it('when an anonymous caller forges an admin identity header, then a protected route still answers 401', async () => {
    const res = await api().post('/api/products').set('x-user-id', 'admin').set('x-user-role', 'admin').send(build.product());
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
  });
});

describe('GET /api/docs', () => {
  it('serves one OpenAPI document merged from every reachable service, paths under /api, conflicting schemas kept apart', async () => {
    const res = await api().get('/api/docs/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toBe('3.0.3');
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/products', '/api/products/{id}', '/api/auth/login', '/api/users/me', '/api/orders']));
    expect(doc.paths).not.toHaveProperty(['/api/internal/cleanup']);
    expect(doc.paths['/api/products/{id}'].get.tags).toEqual(['product-service']);
    expect(doc.paths['/api/orders'].get.responses).toHaveProperty('429');
    // user-service's Session stays; order-service's different Session is renamed and its $ref follows.
    expect(doc.components.schemas.Session.properties).toHaveProperty('token');
    expect(doc.components.schemas['order-service.Session'].properties).toHaveProperty('orderId');
    expect(doc.paths['/api/orders'].get.responses['200'].content['application/json'].schema.$ref).toBe('#/components/schemas/order-service.Session');
    expect(doc.components.schemas).toHaveProperty('Error');
    // The gateway's own answers: 401 on protected routes, 429/503 with retry-after, rate-limit headers on every answer.
    const listOrders = doc.paths['/api/orders'].get.responses;
    expect(listOrders['401'].content['application/json'].schema.$ref).toBe('#/components/schemas/Error');
    expect(Object.keys(listOrders['429'].headers).sort()).toEqual(['Retry-After', 'ratelimit-limit', 'ratelimit-remaining']);
    expect(listOrders['200'].headers['ratelimit-remaining'].$ref).toBe('#/components/headers/RateLimitRemaining');
    expect(doc.paths['/api/auth/login'].post.responses).not.toHaveProperty('401');
    expect(doc.tags.map((t: { name: string }) => t.name)).toEqual(expect.arrayContaining(['order-service', 'product-service']));
    // A service that is down does not break the page; it is named.
    expect(doc['x-unavailable']).toHaveProperty('event-bus');
  });

  it('serves Swagger UI from the npm package (no CDN)', async () => {
    const page = await api().get('/api/docs');
    expect(page.status).toBe(200);
    expect(page.text).toContain('/api/docs/assets/swagger-ui-bundle.js');
    expect(page.text).not.toMatch(/https?:\/\//);
    const bundle = await api().get('/api/docs/assets/swagger-ui-bundle.js');
    expect(bundle.status).toBe(200);
    expect(bundle.headers['content-type']).toContain('javascript');
  });
});
