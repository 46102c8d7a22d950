import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { QueryTypes } from '@cloudretail/db';
import { type EventEnvelope, type Transport, createEvent, createTransport } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import { TEST_REDIS_URL, eventually } from '@cloudretail/testing';
import { type Inventory, type ProductService, adminToken, newOrderId, outboxTypes, startInventory, startProductService } from './helpers';

// inventory-service consuming the saga's order events from its own topic namespace.
const prefix = `t${randomUUID().slice(0, 8)}.`;
let products: ProductService;
let service: Inventory;
let db: Awaited<ReturnType<typeof startInventory>>['db'];
let transport: Transport;

beforeAll(async () => {
  products = await startProductService();
  ({ service, db } = await startInventory(products.url, { EVENT_TOPIC_PREFIX: prefix, OUTBOX_POLL_MS: '50', EVENT_RETRY_BACKOFF_MS: '50' }));
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
  eventually(async () =>
    expect(await service.ctx.sequelize.query('SELECT 1 FROM inbox WHERE consumer_group = $1 AND event_id = $2', { bind: ['inventory-service', event.id], type: QueryTypes.SELECT })).toHaveLength(1),
  );
const publish = (...events: EventEnvelope[]) => transport.publish('orders', events);

const userId = randomUUID();
const placed = (orderId: string, productId: string, quantity: number) =>
  createEvent('OrderPlaced', orderId, { orderId, userId, items: [{ productId, quantity, unitPriceCents: 100 }], totalCents: quantity * 100, currency: 'USD' });
const items = (productId: string, quantity: number) => [{ productId, quantity }];

describe('order events consumer', () => {
  it('when OrderPlaced arrives (twice, as a replay), then the stock is reserved once and StockReserved published once', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    const event = placed(orderId, productId, 3);

    await publish(event, event);

    await handled(event);
    await eventually(async () => expect(await outboxTypes(service, orderId)).toEqual(['StockReserved']));
    expect(await stockOf(productId)).toEqual({ available: 7, reserved: 3 });
  });

  it('when OrderPlaced asks for more than is available, then StockReservationFailed and nothing is reserved', async () => {
    const productId = await stockedProduct(1);
    const orderId = newOrderId();

    await publish(placed(orderId, productId, 2));

    await eventually(async () => expect(await outboxTypes(service, orderId)).toEqual(['StockReservationFailed']));
    expect(await stockOf(productId)).toEqual({ available: 1, reserved: 0 });
  });

  it('when the order is confirmed, then refunded (twice), then the units are sold, then returned once with StockReturned', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    const refunded = () => createEvent('OrderRefunded', orderId, { orderId, userId, items: items(productId, 4) });

    await publish(placed(orderId, productId, 4), createEvent('OrderConfirmed', orderId, { orderId, userId, items: items(productId, 4) }));
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

    await publish(placed(orderId, productId, 2), createEvent('OrderCancelled', orderId, { orderId, userId, items: items(productId, 2), reason: 'payment_declined' }), cancelUnknown);

    await handled(cancelUnknown);
    // Different aggregates are handled concurrently: {5, 0} also holds before the reservation.
    await eventually(async () => expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockReleased']));
    expect(await stockOf(productId)).toEqual({ available: 5, reserved: 0 });
    expect(await outboxTypes(service, unknownOrder)).toEqual([]);
    expect(await transport.listDeadLetters('inventory-service')).toEqual([]);
  });
});
