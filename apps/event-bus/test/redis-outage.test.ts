import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createTestDatabase, eventually, startPrivateRedis, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';
import { bearer, uniquePrefix } from './support';

describe('a Redis outage', () => {
  it('when Redis is down, then the event-bus leaves rotation (Redis is critical here) and a status stream answers 503 in the envelope; it comes back by itself', async () => {
    const redis = await startPrivateRedis();
    const db = await createTestDatabase('event_bus_outage');
    const service = await start(testEnv(db.url, { REDIS_URL: redis.url, EVENT_TOPIC_PREFIX: uniquePrefix() }));
    let redisStopped = false;
    try {
      expect((await request(service.url).get('/health/ready')).status).toBe(200);

      await redis.stop();
      redisStopped = true;

      await eventually(async () => {
        const ready = await request(service.url).get('/health/ready');
        expect([ready.status, ready.body.details?.redis?.status]).toEqual([503, 'down']);
      });
      const stream = await request(service.url).get(`/orders/${randomUUID()}/events`).set('authorization', bearer(randomUUID()));
      expect([stream.status, stream.body.error?.code]).toEqual([503, 'service_unavailable']);

      await redis.start();
      redisStopped = false;
      await eventually(async () => expect((await request(service.url).get('/health/ready')).status).toBe(200), { timeoutMs: 15_000 });
    } finally {
      await service.stop().catch(() => undefined);
      if (!redisStopped) await redis.stop(); // a second stop() of a killed server would wait forever
      await db.drop();
    }
  });
});
