import request from 'supertest';
import { signTestToken, build, createTestDatabase, eventually, startPrivateRedis, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

const admin = `Bearer ${signTestToken({ userId: '00000000-0000-4000-8000-000000000001', role: 'admin' })}`;

describe('a Redis outage', () => {
  it('when Redis is down, then product-service stays ready (Redis reported down) and serves reads from the database', async () => {
    const redis = await startPrivateRedis();
    const db = await createTestDatabase('product_outage');
    const service = await start(testEnv(db.url, { REDIS_URL: redis.url }));
    let redisStopped = false;
    try {
      const created = await request(service.url).post('/products').set('authorization', admin).send(build.product());
      expect(created.status).toBe(201);
      expect((await request(service.url).get(`/products/${created.body.id}`)).status).toBe(200); // now cached

      await redis.stop();
      redisStopped = true;

      await eventually(async () => {
        const ready = await request(service.url).get('/health/ready');
        expect([ready.status, ready.body.postgres?.status, ready.body.redis?.status]).toEqual([200, 'up', 'down']);
      });
      const startedAt = Date.now();
      const read = await request(service.url).get(`/products/${created.body.id}`);
      const list = await request(service.url).get('/products?limit=5');
      expect([read.status, read.body.id]).toEqual([200, created.body.id]);
      expect([list.status, list.body.total]).toEqual([200, 1]);
      expect(Date.now() - startedAt).toBeLessThan(500); // no waiting for Redis reconnect attempts
    } finally {
      await service.stop().catch(() => undefined);
      if (!redisStopped) await redis.stop(); // a second stop() of a killed server would wait forever
      await db.drop();
    }
  });
});
