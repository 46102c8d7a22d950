import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { startPrivateRedis } from '@cloudretail/testing';
import { type Customer, type System, eventually, finalOrder, newCustomer, placeOrder, rows, startSystem } from './support/system';

// The services of the saga share a private redis-server that the test kills and restarts;
// product-service stays on the shared one (it is not part of the outage).
let system: System;
let redis: Awaited<ReturnType<typeof startPrivateRedis>>;

beforeAll(async () => {
  redis = await startPrivateRedis();
  const onPrivateRedis = { REDIS_URL: redis.url };
  system = await startSystem({ env: { 'inventory-service': onPrivateRedis, 'payment-service': onPrivateRedis, 'order-service': onPrivateRedis } });
}, 60_000);
afterAll(async () => {
  await system.stop();
  await redis.stop();
});

const statusOf = async (customer: Customer, orderId: string) =>
  (await request(system.orders!.service.url).get(`/orders/${orderId}`).set('authorization', customer.token)).body.status as string;

/** Every outbox row of the three saga services has been published (nothing left in flight). */
const quiet = async () => {
  for (const service of [system.orders!, system.inventory!, system.payments!]) {
    expect(await rows(service.service.ctx.sequelize, 'SELECT id FROM outbox WHERE published_at IS NULL')).toEqual([]);
  }
};

/** Event ids a group handled (its inbox) and the ids of the events it should have handled (the producers' outboxes). */
async function handledAndExpected(consumer: System['orders'], producers: { service: System['orders']; types: string[] }[]) {
  const handled = (await rows<{ event_id: string }>(consumer!.service.ctx.sequelize, 'SELECT event_id FROM inbox')).map((r) => r.event_id).sort();
  const expected: string[] = [];
  for (const { service, types } of producers) {
    expected.push(...(await rows<{ id: string }>(service!.service.ctx.sequelize, 'SELECT id FROM outbox WHERE type = ANY($1)', [types])).map((r) => r.id));
  }
  return { handled, expected: expected.sort() };
}

describe('event transport outage', () => {
  it('when Redis is down while orders are placed, then they wait, and once it is back every order is CONFIRMED with each event handled exactly once', async () => {
    // Arrange: the system works and is idle
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: 50 });
    const warmUp = await placeOrder(system.orders!.service.url, customer, { items: [{ productId, quantity: 1 }] });
    expect((await finalOrder(system.orders!.service.url, customer, warmUp.body.id)).status).toBe('CONFIRMED');
    await eventually(quiet);

    // Act: Redis dies, orders keep coming (accepted: they only need Postgres), then Redis returns empty
    await redis.stop();
    const placed = [];
    for (let i = 0; i < 5; i++) placed.push(await placeOrder(system.orders!.service.url, customer, { items: [{ productId, quantity: 2 }] }));
    await sleep(1000);
    const whileDown = await Promise.all(placed.map((p) => statusOf(customer, p.body.id)));
    await redis.start();

    // Assert
    expect(placed.map((p) => p.status)).toEqual([202, 202, 202, 202, 202]);
    expect(whileDown).toEqual(['PENDING', 'PENDING', 'PENDING', 'PENDING', 'PENDING']);
    for (const p of placed) expect((await finalOrder(system.orders!.service.url, customer, p.body.id, 60_000)).status).toBe('CONFIRMED');
    await eventually(quiet, { timeoutMs: 30_000 });
    // each group handled exactly the events meant for it: none lost, none twice (the last ones may still be in flight)
    await eventually(async () => {
      const orderSide = await handledAndExpected(system.orders, [
        // StockReserved carries the payment request to payment-service: order-service skips it (no inbox row)
        { service: system.inventory, types: ['StockReservationFailed'] },
        { service: system.payments, types: ['PaymentCaptured', 'PaymentDeclined', 'PaymentRefunded'] },
      ]);
      expect(orderSide.handled).toEqual(orderSide.expected);
      expect(orderSide.handled).toHaveLength(6);
      const inventorySide = await handledAndExpected(system.inventory, [{ service: system.orders, types: ['OrderPlaced', 'OrderConfirmed', 'OrderCancelled', 'OrderRefunded'] }]);
      expect(inventorySide.handled).toEqual(inventorySide.expected);
      expect(inventorySide.handled).toHaveLength(2 * 6);
      const paymentSide = await handledAndExpected(system.payments, [
        { service: system.inventory, types: ['StockReserved'] },
        { service: system.orders, types: ['PaymentRequested', 'OrderCancelled'] },
      ]);
      expect(paymentSide.handled).toEqual(paymentSide.expected);
      expect(paymentSide.handled).toHaveLength(6);
    });
    // one capture per order, and the stock adds up
    const captures = await rows<{ order_id: string }>(
      system.payments!.service.ctx.sequelize,
      "SELECT p.order_id FROM payments p JOIN payment_status_history h ON h.payment_id = p.id WHERE h.status = 'CAPTURED'",
    );
    expect(captures.map((c) => c.order_id).sort()).toEqual([warmUp.body.id, ...placed.map((p) => p.body.id)].sort());
    await eventually(async () => {
      const { available, reserved } = (await request(system.inventory!.service.url).get(`/inventory/${productId}`)).body;
      expect({ available, reserved }).toEqual({ available: 50 - 1 - 5 * 2, reserved: 0 });
    });
  }, 120_000);
});
