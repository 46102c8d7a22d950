import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { type EventEnvelope, type Transport, createEvent, createTransport } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import { TEST_REDIS_URL, eventually } from '@cloudretail/testing';
import { type Inventory, type ProductService, adminToken, newOrderId, outboxPayloads, outboxTypes, startInventory, startProductService } from './helpers';

// inventory-service consuming the saga's order events from its own topic namespace.
const CONSUMER_GROUP = 'inventory-service';
const prefix = `t${randomUUID().slice(0, 8)}.`;
let products: ProductService;
let service: Inventory;
let db: Awaited<ReturnType<typeof startInventory>>['db'];
let transport: Transport;

beforeAll(async () => {
  products = await startProductService();
  ({ service, db } = await startInventory(products.url, { EVENT_TOPIC_PREFIX: prefix, OUTBOX_POLL_MS: '50', EVENT_RETRY_BACKOFF_MS: '50', EVENT_MAX_ATTEMPTS: '3' }));
  transport = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefix }, createLogger({ name: 'test', level: 'silent' }));
}, 60_000);
afterAll(async () => {
  await transport.close();
  await service.stop();
  await db.drop();
  await products.stop();
  await deleteStreams();
});

/** Removes this file's streams (its prefix only) from the shared Redis. */
async function deleteStreams() {
  const redis = new Redis(TEST_REDIS_URL);
  for (const pattern of [`events:${prefix}*`, `events:dlq.${prefix}*`]) {
    const keys = await redis.keys(pattern);
    if (keys.length) await redis.del(...keys);
  }
  redis.disconnect();
}


const stockedProduct = async (available: number) => {
  const productId = await products.createProduct();
  await request(service.url).put(`/inventory/${productId}`).set('authorization', adminToken).send({ available }).expect(200);
  return productId;
};
const stockOf = async (productId: string) => {
  const { available, reserved } = (await request(service.url).get(`/inventory/${productId}`)).body;
  return { available, reserved };
};
const handled = async (event: EventEnvelope) =>
  eventually(async () => expect(await service.ctx.db.query('SELECT 1 FROM inbox WHERE consumer_group = $1 AND event_id = $2', [CONSUMER_GROUP, event.id])).toHaveLength(1));
const publish = (...events: EventEnvelope[]) => transport.publish('orders', events);
/** Which of `events` went to the dead-letter topic (other tests of this file dead-letter on purpose). */
const deadLettered = async (...events: EventEnvelope[]) => {
  const ids = new Set((await transport.listDeadLetters(CONSUMER_GROUP)).map((letter) => (letter.envelope as EventEnvelope).id));
  return events.filter((e) => ids.has(e.id)).map((e) => e.id);
};
/** When each event's inbox row was written, to the microsecond: the start of the transaction that handled it. */
const handledAt = async (...events: EventEnvelope[]) =>
  (await service.ctx.db.query<{ at: string }>('SELECT processed_at::text AS at FROM inbox WHERE consumer_group = $1 AND event_id = ANY($2::uuid[])', [CONSUMER_GROUP, events.map((e) => e.id)])).map((r) => r.at);

/**
 * Publishes `events` so that the consumer reads them as one batch: a first event waits on a stock
 * row this test holds locked, while `events` are delivered and queue up behind it; then the lock goes.
 * Resolves once the first event is handled; the batch is then under way.
 */
async function publishAsOneBatch(...events: EventEnvelope[]) {
  const blocker = await stockedProduct(1);
  let locked!: () => void;
  let unlock!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const held = new Promise<void>((resolve) => (unlock = resolve));
  const holding = service.ctx.db.transaction(async (tx) => {
    await tx.query('SELECT 1 FROM stock WHERE product_id = $1 FOR UPDATE', [blocker]);
    locked();
    await held;
  });
  await isLocked;
  const blocked = placed(newOrderId(), [[blocker, 1]]);
  await publish(blocked);
  await eventually(async () => expect(await service.ctx.db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).toHaveLength(1));
  await publish(...events);
  await delivered();
  unlock();
  await holding;
  await handled(blocked);
}

/** Resolves once every message on the orders stream has been delivered to the consumer group. */
async function delivered() {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const key = `events:${prefix}orders`;
    await eventually(async () => {
      const [[last]] = (await redis.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][];
      const groups = (await redis.xinfo('GROUPS', key)) as unknown[][];
      const lastDelivered = groups.map((fields) => fields[fields.indexOf('last-delivered-id') + 1]);
      expect(lastDelivered).toEqual([last]);
    });
    await new Promise((resolve) => setTimeout(resolve, 50)); // from the read reply to the consumer's queue
  } finally {
    redis.disconnect();
  }
}

const userId = randomUUID();
type Line = [productId: string, quantity: number];
const placed = (orderId: string, lines: Line[], payment?: { paymentId: string; paymentToken: string }) => {
  const items = lines.map(([productId, quantity]) => ({ productId, quantity, unitPriceCents: 100 }));
  const totalCents = items.reduce((sum, i) => sum + i.quantity * 100, 0);
  return createEvent('OrderPlaced', orderId, { orderId, userId, items, totalCents, currency: 'USD', ...payment });
};
const items = (productId: string, quantity: number) => [{ productId, quantity }];

describe('order events consumer', () => {
  it('when OrderPlaced arrives (twice, as a replay), then the stock is reserved once and StockReserved published once', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    const event = placed(orderId, [[productId, 3]]);

    await publish(event, event);

    await handled(event);
    await eventually(async () => expect(await outboxTypes(service, orderId)).toEqual(['StockReserved']));
    expect(await stockOf(productId)).toEqual({ available: 7, reserved: 3 });
  });

  it('when OrderPlaced asks for more than is available, then StockReservationFailed and nothing is reserved', async () => {
    const productId = await stockedProduct(1);
    const orderId = newOrderId();

    await publish(placed(orderId, [[productId, 2]]));

    await eventually(async () => expect(await outboxTypes(service, orderId)).toEqual(['StockReservationFailed']));
    expect(await stockOf(productId)).toEqual({ available: 1, reserved: 0 });
  });

  it('when the order is confirmed, then refunded (twice), then the units are sold, then returned once with StockReturned', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    const refunded = () => createEvent('OrderRefunded', orderId, { orderId, userId, items: items(productId, 4) });

    await publish(placed(orderId, [[productId, 4]]), createEvent('OrderConfirmed', orderId, { orderId, userId, items: items(productId, 4) }));
    await eventually(async () => expect(await stockOf(productId)).toEqual({ available: 6, reserved: 0 }));
    const [first, second] = [refunded(), refunded()];
    await publish(first, second);

    await handled(second);
    expect(await stockOf(productId)).toEqual({ available: 10, reserved: 0 });
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockCommitted', 'StockReturned']);
  });

  it('when the order is cancelled, then the reservation is released; a cancel with no reservation changes nothing and is not an error', async () => {
    const productId = await stockedProduct(5);
    const orderId = newOrderId();
    const unknownOrder = newOrderId();
    const cancelUnknown = createEvent('OrderCancelled', unknownOrder, { orderId: unknownOrder, userId, items: items(productId, 1), reason: 'out_of_stock' });

    await publish(placed(orderId, [[productId, 2]]), createEvent('OrderCancelled', orderId, { orderId, userId, items: items(productId, 2), reason: 'payment_declined' }), cancelUnknown);

    await handled(cancelUnknown);
    // The unknown order's cancel may be handled in an earlier batch: {5, 0} also holds before the reservation.
    await eventually(async () => expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockReleased']));
    expect(await stockOf(productId)).toEqual({ available: 5, reserved: 0 });
    expect(await outboxTypes(service, unknownOrder)).toEqual([]);
    expect(await deadLettered(cancelUnknown)).toEqual([]);
  });

  describe('a batch of events (read together, handled in one transaction)', () => {
    const admin = (path: string, body: object = {}) => request(service.url).post(path).set('authorization', adminToken).send(body);
    const reservedViaApi = async (productId: string, quantity: number) => {
      const orderId = newOrderId();
      await admin('/reservations', { orderId, items: items(productId, quantity) }).expect(201);
      return orderId;
    };
    const cancelled = (orderId: string, productId: string, quantity: number) => createEvent('OrderCancelled', orderId, { orderId, userId, items: items(productId, quantity), reason: 'payment_declined' });

    it('when several OrderPlaced share products, then each is reserved in turn until the stock runs out, and StockReserved carries the payment exactly when OrderPlaced had one', async () => {
      const [a, b] = [await stockedProduct(5), await stockedProduct(5)];
      const [first, second, third, fourth] = [newOrderId(), newOrderId(), newOrderId(), newOrderId()];
      const payment = { paymentId: randomUUID(), paymentToken: 'tok_visa' };
      const events = [
        placed(first, [[b, 1], [a, 2]], payment),
        placed(second, [[a, 2]]),
        placed(third, [[b, 3], [a, 1]], { paymentId: randomUUID(), paymentToken: 'tok_mastercard' }),
        placed(fourth, [[a, 2]], { paymentId: randomUUID(), paymentToken: 'tok_visa' }), // only 0 of a left
      ];

      await publishAsOneBatch(...events);

      await Promise.all(events.map(handled));
      expect(new Set(await handledAt(...events)).size).toBe(1);
      expect(await stockOf(a)).toEqual({ available: 0, reserved: 5 });
      expect(await stockOf(b)).toEqual({ available: 1, reserved: 4 });
      const sorted = (lines: Line[]) => lines.map(([productId, quantity]) => ({ productId, quantity })).sort((x, y) => x.productId.localeCompare(y.productId));
      expect(await outboxPayloads(service, first, 'StockReserved')).toEqual([
        { orderId: first, items: sorted([[b, 1], [a, 2]]), payment: { ...payment, userId, amountCents: 300, currency: 'USD' } },
      ]);
      expect(await outboxPayloads(service, second, 'StockReserved')).toEqual([{ orderId: second, items: sorted([[a, 2]]) }]);
      expect((await outboxPayloads(service, third, 'StockReserved'))[0].payment).toMatchObject({ paymentToken: 'tok_mastercard', amountCents: 400 });
      expect(await outboxTypes(service, fourth)).toEqual(['StockReservationFailed']);
      expect(await outboxPayloads(service, fourth, 'StockReservationFailed')).toEqual([{ orderId: fourth, reason: 'out_of_stock', productIds: [a] }]);
      expect(await outboxTypes(service, a)).toEqual(['StockLevelSet', 'LowStock']);
    });

    it('when some events are 404/409 (nothing to do), then they are logged and done, and the rest of the batch commits with them', async () => {
      const productId = await stockedProduct(10);
      const sold = await reservedViaApi(productId, 1);
      await admin(`/reservations/${sold}/commit`).expect(200);
      const held = await reservedViaApi(productId, 2);
      const [fresh, unknown] = [newOrderId(), newOrderId()];
      const events = [
        placed(fresh, [[productId, 3]]),
        cancelled(sold, productId, 1), // 409: sold units cannot be released
        cancelled(unknown, productId, 1), // 404: no reservation
        createEvent('OrderRefunded', held, { orderId: held, userId, items: items(productId, 2) }), // 409: nothing sold yet
        createEvent('OrderConfirmed', held, { orderId: held, userId, items: items(productId, 2) }),
      ];

      await publishAsOneBatch(...events);

      await Promise.all(events.map(handled));
      expect(new Set(await handledAt(...events)).size).toBe(1);
      expect(await deadLettered(...events)).toEqual([]);
      expect(await outboxTypes(service, fresh)).toEqual(['StockReserved']);
      expect(await outboxTypes(service, sold)).toEqual(['StockReserved', 'StockCommitted']);
      expect(await outboxTypes(service, unknown)).toEqual([]);
      expect(await outboxTypes(service, held)).toEqual(['StockReserved', 'StockCommitted']);
      expect(await stockOf(productId)).toEqual({ available: 4, reserved: 3 });
    });

    it('when one event of a batch fails (a poison event), then it is dead-lettered alone and its neighbours are handled once, on their own', async () => {
      const productId = await stockedProduct(10);
      const broken = await stockedProduct(5);
      const poisoned = await reservedViaApi(broken, 2);
      // A unit count nothing could have produced: releasing the reservation would take `reserved` below zero.
      await service.ctx.db.execute('UPDATE stock SET reserved = 0 WHERE product_id = $1', [broken]);
      const [before, after] = [newOrderId(), newOrderId()];
      const poison = cancelled(poisoned, broken, 2);
      const events = [placed(before, [[productId, 1]]), poison, placed(after, [[productId, 2]])];

      await publishAsOneBatch(...events);
      await Promise.all([events[0], events[2]].map(handled));
      await eventually(async () => expect(await deadLettered(...events)).toEqual([poison.id]), { timeoutMs: 10_000 });

      expect(await outboxTypes(service, before)).toEqual(['StockReserved']);
      expect(await outboxTypes(service, after)).toEqual(['StockReserved']);
      expect(await stockOf(productId)).toEqual({ available: 7, reserved: 3 });
      expect(new Set(await handledAt(events[0], events[2])).size).toBe(2); // the batch rolled back: each was handled alone
      expect(await handledAt(poison)).toEqual([]);
      expect(await outboxTypes(service, poisoned)).toEqual(['StockReserved']);
      expect(await stockOf(broken)).toEqual({ available: 3, reserved: 0 });
    });
  });
});
