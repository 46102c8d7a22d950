import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { TEST_REDIS_URL } from '@cloudretail/testing';
import type { RunningGateway } from '../src/main';
import { type Stub, bearer, closedPort, gatewayEnv, metricValue, sign, startGateway, startStub } from './helpers';

let users: Stub;
let orders: Stub;
let redis: Redis;
const running: RunningGateway[] = [];

beforeAll(async () => {
  [users, orders] = await Promise.all([startStub('user-service'), startStub('order-service')]);
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  await Promise.all(running.map((g) => g.stop()));
  await Promise.all([users?.close(), orders?.close()]);
  redis?.disconnect();
});

const launch = async (overrides: Record<string, string>, redisUrl?: string) => {
  const gateway = await startGateway(gatewayEnv({ 'user-service': users, 'order-service': orders }, { ...(redisUrl ? { REDIS_URL: redisUrl } : {}), ...overrides }));
  running.push(gateway);
  return gateway;
};

// Hour-long windows: a test never straddles a window boundary in practice.
describe('rate limiting shared through Redis', () => {
  it('when two gateway instances share Redis, then their combined count is enforced (10 allowed in total, not 10 each)', async () => {
    const prefix = `test:gateway:${randomUUID()}`;
    const env = { RATE_LIMIT_KEY_PREFIX: prefix, RATE_LIMIT_AUTH: '10/3600s' };
    const [a, b] = [await launch(env), await launch(env)];
    const seenBefore = users.seen.length;

    const statuses: number[] = [];
    let rejected: request.Response | undefined;
    for (let i = 0; i < 24; i++) {
      const res = await request((i % 2 ? b : a).url)
        .post('/api/auth/login')
        .send({ email: 'x@example.com', password: 'wrong' });
      statuses.push(res.status);
      if (res.status === 429) rejected ??= res;
    }

    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(14);
    expect(users.seen.length - seenBefore).toBe(10);
    expect(rejected!.body.error.code).toBe('rate_limited');
    expect(Number(rejected!.headers['retry-after'])).toBeGreaterThan(0);
    // Both instances rejected some: neither kept a private budget.
    expect(statuses.filter((s, i) => s === 429 && i % 2 === 0).length).toBeGreaterThan(0);
    expect(statuses.filter((s, i) => s === 429 && i % 2 === 1).length).toBeGreaterThan(0);
    const keys = await redis.keys(`${prefix}:auth:*`);
    expect(keys).toHaveLength(1);
  });

  it('when authenticated, then each user has a bucket of their own, whatever IP they call from', async () => {
    const gateway = await launch({ RATE_LIMIT_ORDERS: '3/3600s' });
    const [alice, bob] = [sign(randomUUID()), sign(randomUUID())];
    const hit = (token: string) => request(gateway.url).get('/api/orders').set('authorization', bearer(token));

    const alices = [];
    for (let i = 0; i < 4; i++) alices.push((await hit(alice)).status);
    const bobs = (await hit(bob)).status;

    expect(alices).toEqual([200, 200, 200, 429]);
    expect(bobs).toBe(200);
  });

  it('when callers of /api/auth bring tokens of fresh accounts, then they still share their address\'s bucket (a new account buys no attempts)', async () => {
    const gateway = await launch({ RATE_LIMIT_KEY_PREFIX: `test:gateway:${randomUUID()}`, RATE_LIMIT_AUTH: '3/3600s' });
    const login = (token: string) => request(gateway.url).post('/api/auth/login').set('authorization', bearer(token)).send({ email: 'x@example.com', password: 'wrong' });

    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await login(sign(randomUUID()))).status);

    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  it('with TRUST_PROXY, then the anonymous bucket is the address the load balancer saw: a client writing its own X-Forwarded-For gets no fresh bucket', async () => {
    const gateway = await launch({ RATE_LIMIT_KEY_PREFIX: `test:gateway:${randomUUID()}`, RATE_LIMIT_AUTH: '3/3600s', TRUST_PROXY: 'true' });
    // what the load balancer forwards: the client's claim, then the address it really saw
    const login = (claimed: string) => request(gateway.url).post('/api/auth/login').set('x-forwarded-for', `${claimed}, 198.51.100.7`).send({ email: 'x@example.com', password: 'wrong' });

    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await login(`203.0.113.${i}`)).status);
    const other = await request(gateway.url).post('/api/auth/login').set('x-forwarded-for', '198.51.100.8').send({ email: 'x@example.com', password: 'wrong' });

    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(other.status).toBe(200);
    expect(users.seen.at(-1)!.headers['x-forwarded-for']).toBe('198.51.100.8');
  });

  it('when limits are high, then requests far from the limit are counted in batches, and Redis ends with the exact total', async () => {
    const prefix = `test:gateway:${randomUUID()}`;
    const gateway = await launch({ RATE_LIMIT_KEY_PREFIX: prefix, RATE_LIMIT_ORDERS: '1000/3600s' });
    const token = sign(randomUUID());

    await Promise.all(Array.from({ length: 40 }, () => request(gateway.url).get('/api/orders').set('authorization', bearer(token))));
    await gateway.ctx.limiter!.flush();

    const [key] = await redis.keys(`${prefix}:orders:*`);
    expect(Number(await redis.get(key))).toBe(40);
  });
});

describe('when Redis is down', () => {
  let gateway: RunningGateway;
  beforeAll(async () => {
    gateway = await launch({ RATE_LIMIT_AUTH: '3/3600s' }, `redis://127.0.0.1:${await closedPort()}`);
  });

  it('then the gateway keeps serving (fail open) and readiness stays 200 with Redis reported down', async () => {
    const res = await request(gateway.url).get('/api/orders').set('authorization', bearer(sign(randomUUID())));
    expect(res.status).toBe(200);

    const ready = await request(gateway.url).get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body.redis).toMatchObject({ status: 'down', optional: true });
  });

  it('then the outage shows in gateway_rate_limiter_redis_up', async () => {
    const text = (await request(gateway.url).get('/metrics')).text;
    expect(metricValue(text, 'gateway_rate_limiter_redis_up')).toBe(0);
  });

  it('then each instance still limits its own traffic', async () => {
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await request(gateway.url).post('/api/auth/login').send({})).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});
