import request from 'supertest';
import { createApp, finishApp } from '@cloudretail/http';
import { dataServiceBase, port, z } from '@cloudretail/config';
import { createTestDatabase, eventually, startPrivatePostgres, startPrivateRedis, testEnv } from '@cloudretail/testing';
import { type ServiceDefinition, startService } from '../src';

const schema = z.object({ ...dataServiceBase, PORT: port(0) });
const service: ServiceDefinition<typeof schema> = {
  name: 'outage-test',
  schema,
  migrations: [],
  setup: async ({ logger, metrics }) => ({ app: finishApp(createApp({ logger, metrics })) }),
};

describe('readiness through a dependency outage', () => {
  it('when Postgres dies, then readiness is 503 naming postgres; when it is back, then readiness heals by itself', async () => {
    const pg = await startPrivatePostgres();
    const url = new URL(pg.url);
    url.pathname = '/outage';
    const running = await startService(service, testEnv(url.toString()));
    try {
      expect((await request(running.url).get('/health/ready')).status).toBe(200);

      pg.stop();
      const down = await request(running.url).get('/health/ready');
      expect(down.status).toBe(503);
      expect(down.body.details.postgres.status).toBe('down');
      expect(down.body.details.redis.status).toBe('up');
      expect((await request(running.url).get('/health/live')).status).toBe(200);

      pg.start();
      await eventually(async () => expect((await request(running.url).get('/health/ready')).status).toBe(200), { timeoutMs: 15_000 });
    } finally {
      await running.stop();
      pg.destroy();
    }
  });

  it('when Redis dies under a service that degrades without it, then readiness stays 200 and reports redis (and events) down', async () => {
    const redis = await startPrivateRedis();
    const db = await createTestDatabase('outage');
    const running = await startService(service, testEnv(db.url, { REDIS_URL: redis.url }));
    let redisStopped = false;
    try {
      expect((await request(running.url).get('/health/ready')).status).toBe(200);
      await redis.stop();
      redisStopped = true;
      await eventually(async () => {
        const res = await request(running.url).get('/health/ready');
        expect([res.status, res.body.redis, res.body.events?.status]).toEqual([200, expect.objectContaining({ status: 'down', optional: true }), 'down']);
      });
      expect(((await request(running.url).get('/health/ready')).body as Record<string, { status: string }>).postgres.status).toBe('up');
    } finally {
      await running.stop().catch(() => undefined);
      if (!redisStopped) await redis.stop(); // a second stop() of a killed server would wait forever
      await db.drop();
    }
  });

  it('when Redis dies under a service that declares it critical, then readiness is 503 naming redis; when it is back, then readiness heals by itself', async () => {
    const redis = await startPrivateRedis();
    const db = await createTestDatabase('outage');
    const running = await startService({ ...service, critical: ['redis'] }, testEnv(db.url, { REDIS_URL: redis.url }));
    try {
      expect((await request(running.url).get('/health/ready')).status).toBe(200);
      await redis.stop();
      await eventually(async () => {
        const res = await request(running.url).get('/health/ready');
        expect([res.status, res.body.details?.redis?.status]).toEqual([503, 'down']);
      });
      await redis.start();
      await eventually(async () => expect((await request(running.url).get('/health/ready')).status).toBe(200), { timeoutMs: 15_000 });
    } finally {
      await running.stop().catch(() => undefined);
      await redis.stop();
      await db.drop();
    }
  });
});
