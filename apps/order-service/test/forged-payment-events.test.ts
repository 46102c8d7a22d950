import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { type EventEnvelope, type Transport, createEvent, createTransport } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import { TEST_REDIS_URL } from '@cloudretail/testing';
import { type System, adminToken, eventually, finalOrder, newCustomer, placeOrder, rows, startSystem } from './support/system';

// payment-service starts late: until then every order waits on its payment step, where forged
// payment facts are published by someone who can write to the event backbone.
let system: System;
let ordersUrl: string;
let transport: Transport;

beforeAll(async () => {
  system = await startSystem({ without: ['payment-service'] });
  ordersUrl = system.orders!.service.url;
  transport = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: system.prefix }, createLogger({ name: 'test', level: 'silent' }));
}, 60_000);
afterAll(async () => {
  await transport.close();
  await system.stop();
});

const db = () => system.orders!.service.ctx.sequelize;
const stepOf = async (orderId: string) => (await rows<{ status: string; step: string }>(db(), 'SELECT status, step FROM orders WHERE id = $1', [orderId]))[0];
/** Waits until order-service has consumed the event (its inbox row committed). */
const handled = (event: EventEnvelope) => eventually(async () => expect(await rows(db(), 'SELECT 1 FROM inbox WHERE event_id = $1', [event.id])).toHaveLength(1));
const ignoredCount = async (type: string, mismatch: string) => {
  const text = (await request(ordersUrl).get('/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith('saga_events_ignored_total{') && l.includes(`type="${type}"`) && l.includes(`mismatch="${mismatch}"`));
  return line ? Number(line.split(' ').pop()) : 0;
};
const outboxTypes = async (orderId: string) =>
  (await rows<{ type: string }>(db(), 'SELECT type FROM outbox WHERE aggregate_id = $1 ORDER BY seq', [orderId])).map((r) => r.type);

describe('forged payment events', () => {
  it('when a PaymentCaptured that does not match the requested payment is published for a PENDING order paid with tok_chargeDeclined, then it is ignored (metered, not dead-lettered) and the order ends CANCELLED payment_declined', async () => {
    // Arrange: the order waits on its payment step
    const customer = newCustomer();
    const productId = await system.stockedProduct({ priceCents: 4200, available: 5 });
    const placed = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }], token: 'tok_chargeDeclined' });
    expect(placed.status).toBe(202);
    const orderId = placed.body.id as string;
    await eventually(async () =>
      expect(await rows(system.inventory!.service.ctx.sequelize, "SELECT 1 FROM outbox WHERE type = 'StockReserved' AND aggregate_id = $1", [orderId])).toHaveLength(1),
    );
    const [{ payment_id: requested }] = await rows<{ payment_id: string }>(db(), 'SELECT payment_id FROM orders WHERE id = $1', [orderId]);
    const forged = [
      createEvent('PaymentCaptured', orderId, { paymentId: randomUUID(), orderId, amountCents: 4200, currency: 'USD' }),
      createEvent('PaymentCaptured', orderId, { paymentId: requested, orderId, amountCents: 0, currency: 'USD' }),
      createEvent('PaymentCaptured', orderId, { paymentId: requested, orderId, amountCents: 4200, currency: 'EUR' }),
    ];
    const amountBefore = await ignoredCount('PaymentCaptured', 'amount');
    const paymentIdBefore = await ignoredCount('PaymentCaptured', 'payment_id');

    // Act
    await transport.publish('payments', forged);

    // Assert: consumed, not acted on, counted
    await Promise.all(forged.map(handled));
    expect(await stepOf(orderId)).toEqual({ status: 'PENDING', step: 'AWAITING_STOCK' });
    expect(await ignoredCount('PaymentCaptured', 'payment_id')).toBe(paymentIdBefore + 1);
    expect(await ignoredCount('PaymentCaptured', 'amount')).toBe(amountBefore + 2);
    // the real payment step declines the card: never CONFIRMED
    await system.startLater('payment-service');
    expect(await finalOrder(ordersUrl, customer, orderId)).toMatchObject({ status: 'CANCELLED', reason: 'payment_declined' });
    expect(await rows(db(), "SELECT status FROM order_history WHERE order_id = $1 AND status = 'CONFIRMED'", [orderId])).toEqual([]);
    expect(await outboxTypes(orderId)).not.toContain('OrderConfirmed');
    expect(await transport.listDeadLetters('order-service')).toEqual([]);
  });

  it('when a PaymentCaptured comes before the stock was even reserved (so before any payment could be taken), then it is ignored and the saga goes on as if it never came', async () => {
    // inventory is stopped so that the order stays on its stock step
    const customer = newCustomer();
    const productId = await system.stockedProduct({ priceCents: 1000, available: 5 });
    await system.inventory!.service.stop();
    let restarted = false;
    try {
      const placed = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }] });
      const orderId = placed.body.id as string;
      const forged = createEvent('PaymentCaptured', orderId, { paymentId: randomUUID(), orderId, amountCents: 1000, currency: 'USD' });
      // The order chose its payment's id when it was placed: a capture under any other id is not it.
      const before = await ignoredCount('PaymentCaptured', 'payment_id');

      await transport.publish('payments', [forged]);

      await handled(forged);
      expect(await stepOf(orderId)).toEqual({ status: 'PENDING', step: 'AWAITING_STOCK' });
      expect(await ignoredCount('PaymentCaptured', 'payment_id')).toBe(before + 1);
      await system.inventory!.restart();
      restarted = true;
      expect(await finalOrder(ordersUrl, customer, orderId)).toMatchObject({ status: 'CONFIRMED' });
    } finally {
      if (!restarted) await system.inventory!.restart(); // the next test needs it
    }
  });

  it('when a PaymentRefunded names another payment than the one captured, then the CONFIRMED order stays CONFIRMED; the real refund still refunds it', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct({ priceCents: 900, available: 5 });
    if (!system.payments) await system.startLater('payment-service');
    const placed = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }] });
    const orderId = placed.body.id as string;
    expect(await finalOrder(ordersUrl, customer, orderId)).toMatchObject({ status: 'CONFIRMED' });
    const forged = createEvent('PaymentRefunded', orderId, { paymentId: randomUUID(), orderId, amountCents: 900, currency: 'USD' });
    const before = await ignoredCount('PaymentRefunded', 'payment_id');

    await transport.publish('payments', [forged]);

    await handled(forged);
    expect(await stepOf(orderId)).toMatchObject({ status: 'CONFIRMED' });
    expect(await ignoredCount('PaymentRefunded', 'payment_id')).toBe(before + 1);
    // the admin refund through payment-service names the captured payment: REFUNDED
    const paymentsUrl = system.payments!.service.url;
    const [payment] = (await request(paymentsUrl).get('/payments').query({ orderId }).set('authorization', customer.token)).body.items;
    expect((await request(paymentsUrl).post(`/payments/${payment.id}/refund`).set('authorization', adminToken)).status).toBe(200);
    await eventually(async () => expect(await stepOf(orderId)).toMatchObject({ status: 'REFUNDED' }));
  });

  it('when an order confirmed before payment ids were kept (payment_id NULL) is refunded by an admin, then it is REFUNDED: only the amount can be checked', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct({ priceCents: 700, available: 5 });
    if (!system.payments) await system.startLater('payment-service');
    const orderId = (await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }] })).body.id as string;
    expect(await finalOrder(ordersUrl, customer, orderId)).toMatchObject({ status: 'CONFIRMED' });
    await db().query('UPDATE orders SET payment_id = NULL WHERE id = $1', { bind: [orderId] });

    const paymentsUrl = system.payments!.service.url;
    const [payment] = (await request(paymentsUrl).get('/payments').query({ orderId }).set('authorization', customer.token)).body.items;
    expect((await request(paymentsUrl).post(`/payments/${payment.id}/refund`).set('authorization', adminToken)).status).toBe(200);

    await eventually(async () => expect(await stepOf(orderId)).toMatchObject({ status: 'REFUNDED' }));
  });
});
