import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis from 'ioredis';
import request from 'supertest';
import { type EventEnvelope, type Transport, createEvent, createTransport, streamKey } from '@cloudretail/events';
import { TEST_REDIS_URL, createTestDatabase, testEnv } from '@cloudretail/testing';
import { orderStatusRepository } from '../src/data-access/order-status-repository';
import { statusChannel } from '../src/data-access/status-channel';
import type { OrderStatusRecord } from '../src/domain/order-status';
import { orderStatusUseCases } from '../src/domain/order-status-use-cases';
import { start } from '../src/main';
import { adminBearer, bearer, eventually, logger, metricValue, openSse, tokenFor, uniquePrefix } from './support';

type Running = Awaited<ReturnType<typeof start>>;
// Two replicas of the event-bus, sharing its database, Redis and consumer group, as in production.
let replicaA: Running;
let replicaB: Running;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let redis: Redis;
let orderService: Transport; // publishes as order-service's outbox relay would
const prefix = uniquePrefix();

beforeAll(async () => {
  db = await createTestDatabase('event_bus_sse');
  const env = testEnv(db.url, { EVENT_TOPIC_PREFIX: prefix, REDIS_KEY_PREFIX: prefix, SSE_HEARTBEAT_MS: '100', SSE_MAX_STREAMS_PER_USER: '3', SSE_FIRST_STATUS_WAIT_MS: '3000' });
  replicaA = await start(env);
  replicaB = await start(env);
  redis = new Redis(TEST_REDIS_URL);
  orderService = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefix }, logger);
});
afterAll(async () => {
  await orderService?.close();
  await Promise.all([replicaA?.stop(), replicaB?.stop()]);
  const keys = [...(await redis.keys(`${streamKey(prefix)}*`)), ...(await redis.keys(`${prefix}*`))];
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
  await db?.drop();
});

const items = [{ productId: randomUUID(), quantity: 2 }];
/** The facts order-service publishes as an order moves on; the event-bus derives the status from them. */
const placed = (orderId: string, userId: string) =>
  createEvent('OrderPlaced', orderId, { orderId, userId, items: items.map((i) => ({ ...i, unitPriceCents: 1299 })), totalCents: 2598, currency: 'USD' });
const confirmed = (orderId: string, userId: string) => createEvent('OrderConfirmed', orderId, { orderId, userId, items });
const cancelled = (orderId: string, userId: string, reason: string) => createEvent('OrderCancelled', orderId, { orderId, userId, items, reason });
const refunded = (orderId: string, userId: string) => createEvent('OrderRefunded', orderId, { orderId, userId, items });
/** One publish: the event-bus reads these together (one batch) when it is idle. */
const publish = (...events: EventEnvelope[]) => orderService.publish('orders', events);

const stored = async (orderId: string) => (await replicaA.ctx.db.query<{ status: string; version: number }>('SELECT status, version FROM order_status WHERE order_id = $1', [orderId]))[0];
const storedStatus = async (orderId: string) => (await stored(orderId))?.status;

/** An order the event-bus has seen as PENDING. */
async function pendingOrder(userId = randomUUID()) {
  const orderId = randomUUID();
  await publish(placed(orderId, userId));
  await eventually(async () => expect(await storedStatus(orderId)).toBe('PENDING'));
  return { orderId, userId };
}

const eventsUrl = (replica: Running, orderId: string, query = '') => `${replica.url}/orders/${orderId}/events${query}`;
const sseListeners = async (replica: Running) => metricValue((await request(replica.url).get('/metrics')).text, 'event_sse_streams', {});

describe('GET /orders/:id/events', () => {
  it('when the order is confirmed, then clients on either replica get the current status at once, then the change, and the stream ends', async () => {
    const { orderId, userId } = await pendingOrder();

    const onA = await openSse(eventsUrl(replicaA, orderId), { authorization: bearer(userId) });
    const onB = await openSse(eventsUrl(replicaB, orderId, `?access_token=${tokenFor(userId)}`)); // EventSource style
    expect(onA.status).toBe(200);
    expect(onA.headers).toMatchObject({ 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no', 'cache-control': 'no-cache, no-transform' });
    expect(onB.status).toBe(200);
    // The current status arrives before anything else happens, and the stream stays open.
    for (const client of [onA, onB]) await eventually(() => expect(client.events).toEqual([{ id: '1', event: 'status', data: { orderId, status: 'PENDING', at: expect.any(String) } }]));
    expect([onA.ended, onB.ended]).toEqual([false, false]);

    // Whichever replica consumes the change, both clients get it (one of them through pub/sub).
    await publish(confirmed(orderId, userId));

    await Promise.all([onA.done, onB.done]);
    for (const client of [onA, onB]) {
      expect(client.ended).toBe(true); // ended by the server
      expect(client.events.map((e) => [e.id, (e.data as { status: string }).status])).toEqual([
        ['1', 'PENDING'],
        ['2', 'CONFIRMED'],
      ]);
    }
  });

  it('when the order already has a final status, then it is sent and the stream ends; a late, older change does not roll it back', async () => {
    const { orderId, userId } = await pendingOrder();
    await publish(cancelled(orderId, userId, 'payment_declined'));
    await eventually(async () => expect(await storedStatus(orderId)).toBe('CANCELLED'));
    await publish(placed(orderId, userId)); // overtaken: an older fact handled late (replicas do not keep order between them)
    await sleep(200);

    const client = await openSse(eventsUrl(replicaB, orderId), { authorization: bearer(userId) });
    await client.done;

    expect(client.ended).toBe(true);
    expect(client.events).toEqual([{ id: '2', event: 'status', data: { orderId, status: 'CANCELLED', reason: 'payment_declined', at: expect.any(String) } }]);
  });

  it('when the client reconnects with the Last-Event-ID it has, then that status is not sent again, only the next change', async () => {
    const { orderId, userId } = await pendingOrder();
    const client = await openSse(eventsUrl(replicaA, orderId), { authorization: bearer(userId), 'last-event-id': '1' });
    await sleep(200);
    expect(client.events).toEqual([]);

    await publish(cancelled(orderId, userId, 'cancelled_by_user'));

    await client.done;
    expect(client.events.map((e) => e.id)).toEqual(['2']);
  });

  it('when an admin watches someone else’s order, then the stream is open; it sends heartbeats while nothing changes', async () => {
    const { orderId } = await pendingOrder();
    const client = await openSse(eventsUrl(replicaA, orderId), { authorization: adminBearer });

    expect(client.status).toBe(200);
    await eventually(() => expect(client.raw).toContain(': ping\n\n')); // SSE_HEARTBEAT_MS=100 here
    expect(client.events).toHaveLength(1);
    client.close();
    await client.done;
  });

  it('when another customer asks, then 404 as for an unknown order; without a token, then 401', async () => {
    const { orderId } = await pendingOrder();

    const stranger = await request(replicaA.url).get(`/orders/${orderId}/events`).set('authorization', bearer(randomUUID()));
    const unknown = await request(replicaA.url).get(`/orders/${randomUUID()}/events`).set('authorization', bearer(randomUUID()));
    const anonymous = await request(replicaA.url).get(`/orders/${orderId}/events`);
    const badQueryToken = await request(replicaA.url).get(`/orders/${orderId}/events?access_token=nope`);

    expect([stranger.status, stranger.body.error.code]).toEqual([404, 'not_found']);
    expect(unknown.status).toBe(404);
    expect([anonymous.status, anonymous.body.error.code]).toEqual([401, 'unauthorized']);
    expect(badQueryToken.status).toBe(401);
  });

  it('when clients disconnect, then their listeners and Redis subscriptions are removed', async () => {
    const { orderId, userId } = await pendingOrder();
    const clients = await Promise.all([1, 2].map(() => openSse(eventsUrl(replicaB, orderId), { authorization: bearer(userId) })));
    await eventually(() => clients.forEach((c) => expect(c.events).toHaveLength(1)));
    expect(await sseListeners(replicaB)).toBe(2);

    clients.forEach((c) => c.close());

    await eventually(async () => expect(await sseListeners(replicaB)).toBe(0));
    const [, subscribers] = (await redis.pubsub('NUMSUB', `${prefix}order-status:${orderId}`)) as [string, number];
    expect(subscribers).toBe(0);
  });
});

describe('GET /orders/:id/events, bounded', () => {
  it('when the Last-Event-ID is above the version of a finished order, then the final status is sent and the stream ends', async () => {
    const { orderId, userId } = await pendingOrder();
    await publish(confirmed(orderId, userId));
    await eventually(async () => expect(await storedStatus(orderId)).toBe('CONFIRMED'));

    const client = await openSse(eventsUrl(replicaA, orderId), { authorization: bearer(userId), 'last-event-id': '99' });
    await Promise.race([client.done, sleep(3_000)]);

    expect(client.ended).toBe(true);
    expect(client.events.map((e) => [e.id, (e.data as { status: string }).status])).toEqual([['2', 'CONFIRMED']]);
  });

  it('when the Last-Event-ID is above the version of a pending order, then the current status and later changes are still sent', async () => {
    const { orderId, userId } = await pendingOrder();
    const client = await openSse(eventsUrl(replicaB, orderId), { authorization: bearer(userId), 'last-event-id': '7' });
    await eventually(() => expect(client.events.map((e) => e.id)).toEqual(['1']));

    await publish(cancelled(orderId, userId, 'payment_declined'));

    await Promise.race([client.done, sleep(5_000)]);
    expect(client.ended).toBe(true);
    expect(client.events.map((e) => e.id)).toEqual(['1', '2']);
  });

  it('when the client reconnects with the id of the final status, then 204 (EventSource stops reconnecting)', async () => {
    const { orderId, userId } = await pendingOrder();
    await publish(cancelled(orderId, userId, 'cancelled_by_user'));
    await eventually(async () => expect(await storedStatus(orderId)).toBe('CANCELLED'));

    const res = await request(replicaA.url).get(`/orders/${orderId}/events`).set('authorization', bearer(userId)).set('last-event-id', '2');

    expect([res.status, res.text]).toEqual([204, '']);
  });

  it('when a user already holds the most streams allowed, then one more answers 429 in the envelope; closing one frees a slot on any replica', async () => {
    const userId = randomUUID();
    const orders = await Promise.all([1, 2, 3].map(() => pendingOrder(userId)));
    const held = await Promise.all(orders.map(({ orderId }, i) => openSse(eventsUrl(i % 2 ? replicaB : replicaA, orderId), { authorization: bearer(userId) })));
    expect(held.map((c) => c.status)).toEqual([200, 200, 200]);

    const refused = await request(replicaB.url).get(`/orders/${orders[0].orderId}/events`).set('authorization', bearer(userId));
    expect([refused.status, refused.body.error.code, refused.body.error.details]).toEqual([429, 'rate_limited', { limit: 3 }]);
    const otherUser = await pendingOrder();
    expect((await openSse(eventsUrl(replicaB, otherUser.orderId), { authorization: bearer(otherUser.userId) })).status).toBe(200); // others are not affected

    held[0].close();
    await held[0].done;
    await eventually(async () => {
      const again = await openSse(eventsUrl(replicaB, orders[0].orderId), { authorization: bearer(userId) });
      again.close();
      expect(again.status).toBe(200);
    });
    held.forEach((c) => c.close());
  });

  it('when a stream reaches its maximum lifetime, then the server ends it with a retry: hint', async () => {
    const shortLived = await start(testEnv(db.url, { EVENT_TOPIC_PREFIX: prefix, REDIS_KEY_PREFIX: prefix, SSE_MAX_LIFETIME_MS: '400', SSE_RECONNECT_MS: '1234' }));
    try {
      const { orderId, userId } = await pendingOrder();
      const client = await openSse(eventsUrl(shortLived, orderId), { authorization: bearer(userId) });

      await Promise.race([client.done, sleep(5_000)]);

      expect(client.ended).toBe(true);
      expect(client.events.map((e) => e.id)).toEqual(['1']);
      expect(client.raw.endsWith('retry: 1234\n\n')).toBe(true);
    } finally {
      await shortLived.stop();
    }
  });

  it('when the stream is opened before the order’s first status reached the event-bus, then it waits for it instead of answering 404', async () => {
    const orderId = randomUUID();
    const userId = randomUUID();
    const opening = openSse(eventsUrl(replicaA, orderId), { authorization: bearer(userId) });
    const strangerAsks = request(replicaB.url).get(`/orders/${orderId}/events`).set('authorization', bearer(randomUUID()));
    await sleep(300);

    await publish(placed(orderId, userId));

    const client = await opening;
    expect(client.status).toBe(200);
    await eventually(() => expect(client.events.map((e) => (e.data as { status: string }).status)).toEqual(['PENDING']));
    client.close();
    expect((await strangerAsks).status).toBe(404); // the owner check still applies once the status is there
  });

  it('when no status arrives within SSE_FIRST_STATUS_WAIT_MS, then 404', async () => {
    const startedAt = Date.now();
    const res = await request(replicaA.url).get(`/orders/${randomUUID()}/events`).set('authorization', bearer(randomUUID()));
    expect([res.status, res.body.error.code]).toEqual([404, 'not_found']);
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(2_900);
  });
});

describe('the status, from the order facts', () => {
  it('when orders change in one batch, then each client gets its order’s change once the batch has committed', async () => {
    const [a, b] = await Promise.all([pendingOrder(), pendingOrder()]);
    const onA = await openSse(eventsUrl(replicaA, a.orderId), { authorization: bearer(a.userId) });
    const onB = await openSse(eventsUrl(replicaB, b.orderId), { authorization: bearer(b.userId) });
    await eventually(() => [onA, onB].forEach((c) => expect(c.events).toHaveLength(1)));

    await publish(confirmed(a.orderId, a.userId), cancelled(b.orderId, b.userId, 'out_of_stock'));

    await Promise.all([onA.done, onB.done]);
    expect(onA.events.map((e) => [e.id, e.data])).toEqual([
      ['1', { orderId: a.orderId, status: 'PENDING', at: expect.any(String) }],
      ['2', { orderId: a.orderId, status: 'CONFIRMED', at: expect.any(String) }],
    ]);
    expect(onB.events.map((e) => [e.id, e.data])).toEqual([
      ['1', { orderId: b.orderId, status: 'PENDING', at: expect.any(String) }],
      ['2', { orderId: b.orderId, status: 'CANCELLED', reason: 'out_of_stock', at: expect.any(String) }],
    ]);
  });

  it('when a confirmed order is refunded, then a stream opened afterwards gets REFUNDED as the next version, at the time of the fact', async () => {
    const { orderId, userId } = await pendingOrder();
    await publish(confirmed(orderId, userId));
    await eventually(async () => expect(await storedStatus(orderId)).toBe('CONFIRMED'));
    const refund = refunded(orderId, userId);

    await publish(refund);
    await eventually(async () => expect(await storedStatus(orderId)).toBe('REFUNDED'));

    const client = await openSse(eventsUrl(replicaA, orderId), { authorization: bearer(userId), 'last-event-id': '2' });
    await client.done;
    expect(client.events).toEqual([{ id: '3', event: 'status', data: { orderId, status: 'REFUNDED', at: refund.occurredAt } }]);
  });

  it('when an older order-service still sends OrderStatusChanged (in flight during an upgrade), then it is streamed as before; the same status told twice is one version', async () => {
    const orderId = randomUUID();
    const userId = randomUUID();
    await publish(createEvent('OrderStatusChanged', orderId, { orderId, userId, status: 'PENDING' }));
    await eventually(async () => expect(await storedStatus(orderId)).toBe('PENDING'));
    const client = await openSse(eventsUrl(replicaB, orderId), { authorization: bearer(userId) });
    await eventually(() => expect(client.events).toHaveLength(1));

    await publish(
      createEvent('OrderStatusChanged', orderId, { orderId, userId, status: 'CANCELLED', reason: 'payment_declined' }),
      cancelled(orderId, userId, 'payment_declined'), // the older release sent the fact too
    );

    await client.done;
    expect(client.events.map((e) => [e.id, e.data])).toEqual([
      ['1', { orderId, status: 'PENDING', at: expect.any(String) }],
      ['2', { orderId, status: 'CANCELLED', reason: 'payment_declined', at: expect.any(String) }],
    ]);
    expect(await stored(orderId)).toEqual({ status: 'CANCELLED', version: 2 });
  });
});

describe('recording a status change', () => {
  const channel = () => statusChannel(redis, logger, { prefix });
  const change = (orderId: string, status: 'PENDING' | 'CONFIRMED') => ({ orderId, userId: randomUUID(), status, at: new Date().toISOString() });

  it('when the change is recorded in a transaction, then it is published once that commits, and not at all when it rolls back', async () => {
    const orderId = randomUUID();
    const statusChannelOfTest = channel();
    const useCases = orderStatusUseCases({ statuses: orderStatusRepository(replicaA.ctx.db), channel: statusChannelOfTest });
    const heard: OrderStatusRecord[] = [];
    await useCases.watch(orderId, { onChange: (r) => heard.push(r), onResync: () => undefined });
    try {
      await replicaA.ctx.db.transaction(async (tx) => {
        await useCases.recordStatusChange(change(orderId, 'PENDING'), tx);
        await sleep(200);
        expect(heard).toEqual([]); // stored but not committed: nobody may hear of it yet
      });
      await eventually(() => expect(heard.map((r) => [r.version, r.status])).toEqual([[1, 'PENDING']]));

      const rolledBack = replicaA.ctx.db.transaction(async (tx) => {
        await useCases.recordStatusChange(change(orderId, 'CONFIRMED'), tx);
        throw new Error('a later handler of the batch failed');
      });
      await expect(rolledBack).rejects.toThrow('a later handler of the batch failed');
      await sleep(200);

      expect(heard).toHaveLength(1);
      expect(await stored(orderId)).toEqual({ status: 'PENDING', version: 1 });
    } finally {
      await statusChannelOfTest.close();
    }
  });

  it('when two replicas’ batches change the same orders in opposite orders, then one waits for the other instead of deadlocking', async () => {
    const [x, y] = [randomUUID(), randomUUID()];
    const { db } = replicaA.ctx;
    const statuses = orderStatusRepository(db);
    const batch = (first: string, second: string, pauseMs: number) =>
      db.transaction(async (tx) => {
        await statuses.lockOrders([first, second], tx); // what the consumer's prepare does
        await statuses.advance(change(first, 'PENDING'), tx);
        await sleep(pauseMs); // the other batch starts meanwhile
        await statuses.advance(change(second, 'PENDING'), tx);
      });

    const results = await Promise.allSettled([batch(x, y, 300), sleep(100).then(() => batch(y, x, 0))]);

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    expect([await storedStatus(x), await storedStatus(y)]).toEqual(['PENDING', 'PENDING']);
  });
});

describe('shutdown', () => {
  it('when a replica stops, then its open streams are ended instead of holding up the drain', async () => {
    const extra = await start(testEnv(db.url, { EVENT_TOPIC_PREFIX: prefix, SHUTDOWN_TIMEOUT_MS: '20000' }));
    const { orderId, userId } = await pendingOrder();
    const client = await openSse(eventsUrl(extra, orderId), { authorization: bearer(userId) });
    await eventually(() => expect(client.events).toHaveLength(1));

    const startedAt = Date.now();
    await extra.stop();

    expect(Date.now() - startedAt).toBeLessThan(5_000);
    await client.done;
    expect(client.ended).toBe(true);
  });
});
