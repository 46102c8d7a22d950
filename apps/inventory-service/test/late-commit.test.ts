import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { type EventEnvelope, type Transport, createEvent, createTransport } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import { TEST_REDIS_URL, eventually } from '@cloudretail/testing';
import { type Inventory, type ProductService, adminToken, newOrderId, outboxPayloads, outboxTypes, startInventory, startProductService } from './helpers';

// Reservations expire after 150 ms and the sweeper runs every 25 ms: a commit (the payment step)
// easily comes after the expiry, which is what these tests are about.
const TTL_MS = 150;
const prefix = `t${randomUUID().slice(0, 8)}.`;
let products: ProductService;
let service: Inventory;
let db: Awaited<ReturnType<typeof startInventory>>['db'];
let transport: Transport;

beforeAll(async () => {
  products = await startProductService();
  ({ service, db } = await startInventory(products.url, {
    RESERVATION_TTL_MS: String(TTL_MS),
    RESERVATION_SWEEP_INTERVAL_MS: '25',
    EVENT_TOPIC_PREFIX: prefix,
    OUTBOX_POLL_MS: '50',
    EVENT_RETRY_BACKOFF_MS: '50',
  }));
  transport = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefix }, createLogger({ name: 'test', level: 'silent' }));
}, 60_000);
afterAll(async () => {
  await transport.close();
  await service.stop();
  await db.drop();
  await products.stop();
  const redis = new Redis(TEST_REDIS_URL);
  for (const pattern of [`events:${prefix}*`, `events:dlq.${prefix}*`]) {
    const keys = await redis.keys(pattern);
    if (keys.length) await redis.del(...keys);
  }
  redis.disconnect();
});

const api = () => request(service.url);
const stockedProduct = async (available: number) => {
  const productId = await products.createProduct();
  await api().put(`/inventory/${productId}`).set('authorization', adminToken).send({ available }).expect(200);
  return productId;
};
const stockOf = async (productId: string) => {
  const { available, reserved } = (await api().get(`/inventory/${productId}`)).body;
  return { available, reserved };
};
const reserve = (orderId: string, productId: string, quantity: number) =>
  api().post('/reservations').set('authorization', adminToken).send({ orderId, items: [{ productId, quantity }] }).expect(201);
const commit = (orderId: string) => api().post(`/reservations/${orderId}/commit`).set('authorization', adminToken);
const expired = (orderId: string) =>
  eventually(async () => expect((await api().get(`/reservations/${orderId}`).set('authorization', adminToken)).body.status).toBe('RELEASED'));
/** Units sold of a product: the items of its committed reservations. */
const soldOf = async (productId: string) => {
  const [{ sold }] = await service.ctx.db.query<{ sold: string }>(
    "SELECT coalesce(sum(i.quantity), 0) AS sold FROM reservation_items i JOIN reservations r USING (order_id) WHERE r.status = 'COMMITTED' AND i.product_id = $1",
    [productId],
  );
  return Number(sold);
};
const handled = (event: EventEnvelope) =>
  eventually(async () =>
    expect(await service.ctx.db.query('SELECT 1 FROM inbox WHERE consumer_group = $1 AND event_id = $2', ['inventory-service', event.id])).toHaveLength(1),
  );
const userId = randomUUID();

describe('a commit after the reservation expired', () => {
  it('when the units are still on sale, then they are sold from available (200 COMMITTED) and never both sold and on sale', async () => {
    const productId = await stockedProduct(5);
    const orderId = newOrderId();
    await reserve(orderId, productId, 2);
    await expired(orderId);
    expect(await stockOf(productId)).toEqual({ available: 5, reserved: 0 });

    const res = await commit(orderId);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ orderId, status: 'COMMITTED' });
    expect(await stockOf(productId)).toEqual({ available: 3, reserved: 0 });
    expect(await soldOf(productId)).toBe(2);
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockReleased', 'StockCommitted']);
    expect((await commit(orderId)).status).toBe(200); // a repeat sells nothing more
    expect(await stockOf(productId)).toEqual({ available: 3, reserved: 0 });
  });

  it('when the units have been sold since, then 409 lists the short product and nothing moves', async () => {
    const productId = await stockedProduct(2);
    const orderId = newOrderId();
    await reserve(orderId, productId, 2);
    await expired(orderId);
    await api().put(`/inventory/${productId}`).set('authorization', adminToken).send({ available: 1 }).expect(200);

    const res = await commit(orderId);

    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'conflict', details: [{ productId, requested: 2, available: 1, reason: 'out_of_stock' }] });
    expect(await stockOf(productId)).toEqual({ available: 1, reserved: 0 });
    expect(await soldOf(productId)).toBe(0);
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockReleased']);
  });

  it('when a released reservation was not expired (released on request), then the commit is still a 409', async () => {
    const productId = await stockedProduct(3);
    const orderId = newOrderId();
    await reserve(orderId, productId, 1);
    await api().post(`/reservations/${orderId}/release`).set('authorization', adminToken).send({ reason: 'requested' }).expect(200);

    expect((await commit(orderId)).status).toBe(409);
    expect(await stockOf(productId)).toEqual({ available: 3, reserved: 0 });
  });

  it('when commits race the expiry sweeper, then every order is sold exactly once and stock is conserved', async () => {
    const productId = await stockedProduct(12);
    const orderIds = Array.from({ length: 10 }, newOrderId);
    await Promise.all(orderIds.map((id) => reserve(id, productId, 1)));

    // Commits spread over twice the TTL: some before the sweeper, some during it, some after.
    const results = await Promise.all(
      orderIds.map(async (id, n) => {
        await new Promise((resolve) => setTimeout(resolve, (n * 2 * TTL_MS) / orderIds.length));
        return (await commit(id)).status;
      }),
    );

    expect(results).toEqual(orderIds.map(() => 200));
    const level = await stockOf(productId);
    expect(level).toEqual({ available: 2, reserved: 0 });
    expect(level.available + level.reserved + (await soldOf(productId))).toBe(12);
  });

  it('when OrderConfirmed comes after the expiry and the stock is gone, then StockCommitFailed tells the saga to compensate', async () => {
    const productId = await stockedProduct(1);
    const [gone, fine] = [newOrderId(), newOrderId()];
    const other = await stockedProduct(4);
    await reserve(gone, productId, 1);
    await reserve(fine, other, 1);
    await Promise.all([expired(gone), expired(fine)]);
    await api().put(`/inventory/${productId}`).set('authorization', adminToken).send({ available: 0 }).expect(200);
    const confirmations = [
      createEvent('OrderConfirmed', gone, { orderId: gone, userId, items: [{ productId, quantity: 1 }] }),
      createEvent('OrderConfirmed', fine, { orderId: fine, userId, items: [{ productId: other, quantity: 1 }] }),
    ];

    await transport.publish('orders', confirmations);

    await Promise.all(confirmations.map(handled));
    expect(await outboxTypes(service, gone)).toEqual(['StockReserved', 'StockReleased', 'StockCommitFailed']);
    expect(await outboxPayloads(service, gone, 'StockCommitFailed')).toEqual([{ orderId: gone, reason: 'out_of_stock', productIds: [productId] }]);
    expect(await stockOf(productId)).toEqual({ available: 0, reserved: 0 });
    expect(await outboxTypes(service, fine)).toEqual(['StockReserved', 'StockReleased', 'StockCommitted']);
    expect(await stockOf(other)).toEqual({ available: 3, reserved: 0 });
    expect(await transport.listDeadLetters('inventory-service')).toEqual([]);
  });
});
