import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { TOPICS, type EventEnvelope, type Transport, createEvent, createTransport, streamKey } from '@cloudretail/events';
import { TEST_REDIS_URL, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';
import { adminBearer, bearer, eventually, logger, metricValue, uniquePrefix } from './support';

type Running = Awaited<ReturnType<typeof start>>;
let service: Running;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let redis: Redis;
let bus: Transport; // what other services would use: the same broker and namespace
const prefix = uniquePrefix();

beforeAll(async () => {
  db = await createTestDatabase('event_bus');
  service = await start(testEnv(db.url, { EVENT_TOPIC_PREFIX: prefix }));
  redis = new Redis(TEST_REDIS_URL);
  bus = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefix, EVENT_MAX_ATTEMPTS: 1, EVENT_RETRY_BACKOFF_MS: 10 }, logger);
});
afterAll(async () => {
  await bus?.close();
  await service?.stop();
  const keys = [...(await redis.keys(`${streamKey(prefix)}*`)), ...(await redis.keys(`${streamKey(`dlq.${prefix}`)}*`))]; // only this file's namespace
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await db?.drop();
});

const api = () => request(service.url);
const paymentCaptured = () => createEvent('PaymentCaptured', randomUUID(), { paymentId: randomUUID(), orderId: randomUUID(), amountCents: 1299, currency: 'USD' });

describe('GET /events/catalog', () => {
  it('lists every event type with its version, topic and payload JSON Schema', async () => {
    const res = await api().get('/events/catalog');

    expect(res.status).toBe(200);
    const byType = new Map(res.body.map((e: { type: string }) => [e.type, e]));
    expect(byType.get('OrderStatusChanged')).toMatchObject({
      version: 1,
      topic: 'orders',
      schema: { type: 'object', properties: { status: { enum: ['PENDING', 'CONFIRMED', 'CANCELLED', 'REFUNDED'] } } },
    });
    expect(new Set(res.body.map((e: { topic: string }) => e.topic))).toEqual(new Set(TOPICS));
  });
});

describe('provisioning at start-up', () => {
  it('when the service has started, then every catalog topic has its stream and no scratch group is left behind', async () => {
    for (const topic of TOPICS) {
      expect(await redis.type(streamKey(`${prefix}${topic}`))).toBe('stream');
      const groups = ((await redis.xinfo('GROUPS', streamKey(`${prefix}${topic}`))) as unknown[][]).map((g) => g[1]);
      expect(groups).toEqual(topic === 'orders' ? [`${prefix}event-bus`] : []); // only the status consumer's own group
    }
  });
});

describe('dead letters', () => {
  it('when a message keeps failing in a consumer, then an admin lists it, replays it once fixed, and it is redelivered and gone', async () => {
    // Arrange: payment-service's consumer (in this file's namespace) fails until "fixed"
    let fixed = false;
    const handled: EventEnvelope[] = [];
    const consumer = await bus.subscribe({
      group: 'payment-service',
      topics: ['payments'],
      handle: async (event) => {
        if (!fixed) throw new Error('provider misconfigured');
        handled.push(event);
      },
    });
    const poison = paymentCaptured();
    await bus.publish('payments', [poison]);

    // Act + Assert: it lands in dlq.payment-service
    const listed = await eventually(async () => {
      const res = await api().get('/dead-letters?group=payment-service').set('authorization', adminBearer);
      expect(res.status).toBe(200);
      expect(res.body.total).toBe(1);
      return res.body;
    });
    expect(listed).toMatchObject({ page: 1, limit: 20 });
    expect(listed.items[0]).toMatchObject({ group: 'payment-service', reason: 'Error: provider misconfigured', attempts: 1, envelope: { id: poison.id, type: 'PaymentCaptured' } });
    const metrics = await api().get('/metrics');
    expect(metricValue(metrics.text, 'event_dead_letters', { group: 'payment-service' })).toBe(1);

    fixed = true;
    const replay = await api().post(`/dead-letters/payment-service/${listed.items[0].id}/replay`).set('authorization', adminBearer);
    expect(replay.status).toBe(204);

    await eventually(() => expect(handled.map((e) => e.id)).toEqual([poison.id]));
    const after = await api().get('/dead-letters?group=payment-service').set('authorization', adminBearer);
    expect(after.body).toMatchObject({ items: [], total: 0 });
    expect(metricValue((await api().get('/metrics')).text, 'event_dead_letters', { group: 'payment-service' })).toBe(0);
    await consumer.stop();
  });

  it('when the dead letter is unknown, then replay is 404', async () => {
    const res = await api().post('/dead-letters/order-service/1-0/replay').set('authorization', adminBearer);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('when the caller is a customer, then 403; without a token, then 401', async () => {
    expect((await api().get('/dead-letters?group=order-service').set('authorization', bearer(randomUUID()))).status).toBe(403);
    expect((await api().post('/dead-letters/order-service/1-0/replay').set('authorization', bearer(randomUUID()))).status).toBe(403);
    expect((await api().get('/dead-letters?group=order-service')).status).toBe(401);
  });

  it('when the group is not a known consumer group, then 400 naming the field', async () => {
    const list = await api().get('/dead-letters?group=nobody').set('authorization', adminBearer);
    expect(list.status).toBe(400);
    expect(list.body.error.details).toEqual([expect.objectContaining({ location: 'query', path: 'group' })]);
    const replay = await api().post('/dead-letters/nobody/1-0/replay').set('authorization', adminBearer);
    expect(replay.status).toBe(400);
  });
});

describe('GET /metrics', () => {
  it('when a group has messages nobody has read, then event_consumer_lag is their number, and promtool accepts the output', async () => {
    // Arrange: inventory-service's group exists on the provisioned (empty) catalog stream, but nobody consumes
    const consumer = await bus.subscribe({ group: 'inventory-service', topics: ['catalog'], handle: async () => undefined });
    await consumer.stop();
    const events = [1, 2, 3].map(() => {
      const productId = randomUUID();
      return createEvent('ProductDeleted', productId, { productId });
    });
    await bus.publish('catalog', events);

    const res = await api().get('/metrics');

    expect(res.status).toBe(200);
    expect(metricValue(res.text, 'event_consumer_lag', { group: 'inventory-service', topic: 'catalog' })).toBe(3);
    expect(metricValue(res.text, 'event_consumer_pending', { group: 'inventory-service', topic: 'catalog' })).toBe(0);
    expect(metricValue(res.text, 'event_consumer_lag', { group: 'event-bus', topic: 'orders' })).toBe(0);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: res.text, encoding: 'utf8' });
    expect({ status: promtool.status, output: promtool.stdout + promtool.stderr }).toEqual({ status: 0, output: '' });
  });
});
