import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { TEST_JWT_KEYS, signTestToken } from '@cloudretail/testing';
import type { RunningGateway } from '../src/main';
import type { UpstreamName } from '../src/routes';
import { type Stub, bearer, gatewayEnv, metricValue, startAllStubs, startGateway, tokens } from './helpers';

let stubs: Record<UpstreamName, Stub>;
let gateway: RunningGateway;

beforeAll(async () => {
  stubs = await startAllStubs();
  gateway = await startGateway(gatewayEnv(stubs));
});
afterAll(async () => {
  await gateway?.stop();
  await Promise.all(Object.values(stubs ?? {}).map((s) => s.close()));
});

const api = () => request(gateway.url);
type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

// Every route group of the public contract: [method, path, upstream, public?]
const ROUTES: [Method, string, UpstreamName, boolean][] = [
  ['post', '/api/auth/register', 'user-service', true],
  ['post', '/api/auth/login', 'user-service', true],
  ['get', '/api/users/me', 'user-service', false],
  ['patch', '/api/users/me', 'user-service', false],
  ['get', '/api/products', 'product-service', true],
  ['get', '/api/products/p1', 'product-service', true],
  ['post', '/api/products', 'product-service', false],
  ['patch', '/api/products/p1', 'product-service', false],
  ['delete', '/api/products/p1', 'product-service', false],
  ['get', '/api/inventory/p1', 'inventory-service', true],
  ['put', '/api/inventory/p1', 'inventory-service', false],
  ['post', '/api/orders', 'order-service', false],
  ['get', '/api/orders', 'order-service', false],
  ['get', '/api/orders/o1', 'order-service', false],
  ['post', '/api/orders/o1/cancel', 'order-service', false],
  ['get', '/api/orders/o1/events', 'event-bus', false],
  ['get', '/api/payments?orderId=o1', 'payment-service', false],
  ['post', '/api/payments/p1/refund', 'payment-service', false],
];
const CALLERS = { anonymous: undefined, customer: tokens.customer, admin: tokens.admin };

describe('auth matrix: anonymous / customer / admin × every route group', () => {
  const cases = ROUTES.flatMap(([method, path, upstream, isPublic]) =>
    Object.entries(CALLERS).map(([caller, token]) => {
      const expected = isPublic || token ? 200 : 401;
      return [caller, method.toUpperCase(), path, expected, method, upstream, token] as const;
    }),
  );

  it.each(cases)('%s %s %s → %i', async (_caller, _m, path, expected, method, upstream, token) => {
    const seenBefore = stubs[upstream].seen.length;
    let req = api()[method](path);
    if (token) req = req.set('authorization', bearer(token));
    const res = await req;

    expect(res.status).toBe(expected);
    if (expected === 401) {
      expect(res.body).toEqual({ error: { code: 'unauthorized', message: 'Authentication required' } });
      expect(stubs[upstream].seen.length).toBe(seenBefore); // rejected at the edge
    } else {
      // Role checks are the service's job: the gateway forwards customers and admins alike, token included.
      expect(res.body.upstream).toBe(upstream);
      expect(res.body.headers.authorization).toBe(token ? bearer(token) : undefined);
    }
  });
});

describe('bad tokens', () => {
  it('when the token has expired, then a protected route answers 401 "Token expired"', async () => {
    const expired = signTestToken({ userId: 'u1', role: 'customer' }, { expiresInSeconds: -10 });
    const res = await api().get('/api/orders').set('authorization', bearer(expired));
    expect(res.status).toBe(401);
    expect(res.body.error).toEqual({ code: 'unauthorized', message: 'Token expired' });
  });

  it('when the token is HS256 (any secret, even the public key), signed by another key, uses alg none, or the scheme is not Bearer, then 401', async () => {
    const forged = jwt.sign({ role: 'admin' }, 'another-secret-0123456789abcdef', { subject: 'u1', issuer: 'cloudretail' });
    const withPublicKey = jwt.sign({ role: 'admin' }, Buffer.from(TEST_JWT_KEYS.publicKey), { subject: 'u1', issuer: 'cloudretail', algorithm: 'HS256' });
    const otherKey = jwt.sign({ role: 'admin' }, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, { subject: 'u1', issuer: 'cloudretail', algorithm: 'RS256' });
    const none = jwt.sign({ role: 'admin' }, '', { subject: 'u1', issuer: 'cloudretail', algorithm: 'none' });
    for (const header of [bearer(forged), bearer(withPublicKey), bearer(otherKey), bearer(none), `Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer']) {
      const res = await api().get('/api/users/me').set('authorization', header);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('unauthorized');
    }
  });

  it('when a public route gets an invalid token, then it is forwarded and the service decides (services verify tokens too)', async () => {
    const res = await api().get('/api/products/p1').set('authorization', 'Bearer not-a-jwt');
    expect(res.status).toBe(200);
    expect(res.body.headers.authorization).toBe('Bearer not-a-jwt');
  });

  it('when a token expires while cached, then the cache does not keep it alive', async () => {
    const shortLived = signTestToken({ userId: 'u-short', role: 'customer' }, { expiresInSeconds: 1 });
    expect((await api().get('/api/orders').set('authorization', bearer(shortLived))).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const res = await api().get('/api/orders').set('authorization', bearer(shortLived));
    expect(res.status).toBe(401);
    expect(res.body.error.message).toBe('Token expired');
  });
});

describe('health and metrics', () => {
  it('readiness reports the gateway itself and Redis, not the upstreams', async () => {
    const res = await request(gateway.url).get('/health/ready');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ redis: { status: 'up', optional: true } });
    expect(Object.keys(res.body)).not.toContain('product-service');
  });

  it('proxied calls are metered per upstream (latency histogram by status)', async () => {
    await api().get('/api/products/p1');
    const text = (await request(gateway.url).get('/metrics')).text;
    expect(metricValue(text, 'gateway_upstream_request_duration_seconds_count', 'upstream="product-service"', 'status="200"')).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'http_requests_total', 'route="/api/products"')).toBeGreaterThanOrEqual(1);
  });
});
