import request from 'supertest';
import { createTransport } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import { TEST_REDIS_URL } from '@cloudretail/testing';
import { type Customer, type System, adminToken, eventually, newCustomer, placeOrder, rows, startSystem, stockOf } from './support/system';

// Reservations expire after 200 ms, and payment-service starts only once they have: every
// confirmation comes after its reservation expired (a payment step slower than RESERVATION_TTL_MS).
let system: System;
let ordersUrl: string;
let inventoryUrl: string;

beforeAll(async () => {
  system = await startSystem({ without: ['payment-service'], env: { 'inventory-service': { RESERVATION_TTL_MS: '200', RESERVATION_SWEEP_INTERVAL_MS: '25' } } });
  ordersUrl = system.orders!.service.url;
  inventoryUrl = system.inventory!.service.url;
}, 60_000);
afterAll(async () => {
  await system.stop();
});

const statusOf = async (customer: Customer, orderId: string) => (await request(ordersUrl).get(`/orders/${orderId}`).set('authorization', customer.token)).body as { status: string; reason?: string };
const reservationOf = async (orderId: string) => (await request(inventoryUrl).get(`/reservations/${orderId}`).set('authorization', adminToken)).body as { status: string };
/** Units sold of a product, from inventory's own books: committed reservations not returned. */
const soldOf = async (productId: string) => {
  const [{ sold }] = await rows<{ sold: string }>(
    system.inventory!.service.ctx.sequelize,
    `SELECT coalesce(sum(i.quantity), 0) AS sold FROM reservation_items i JOIN reservations r USING (order_id)
     WHERE r.status = 'COMMITTED' AND i.product_id = $1 AND NOT EXISTS (SELECT 1 FROM stock_returns s WHERE s.order_id = r.order_id)`,
    [productId],
  );
  return Number(sold);
};

describe('a confirmation after the reservation expired', () => {
  it('when the units are still on sale, then they are sold (CONFIRMED); when they are gone, then the order is refunded and CANCELLED out_of_stock; stock is conserved', async () => {
    // Arrange: two orders wait on their payment step until their reservations expire
    const customer = newCustomer();
    const plenty = await system.stockedProduct({ priceCents: 1500, available: 3 });
    const scarce = await system.stockedProduct({ priceCents: 800, available: 1 });
    const kept = (await placeOrder(ordersUrl, customer, { items: [{ productId: plenty, quantity: 2 }] })).body.id as string;
    const late = (await placeOrder(ordersUrl, customer, { items: [{ productId: scarce, quantity: 1 }] })).body.id as string;
    await eventually(async () => {
      expect((await reservationOf(kept)).status).toBe('RELEASED');
      expect((await reservationOf(late)).status).toBe('RELEASED');
    });
    expect(await stockOf(inventoryUrl, scarce)).toEqual({ available: 1, reserved: 0 });
    // meanwhile a rival order reserves the one scarce unit: one of the two cannot be sold
    const rival = (await placeOrder(ordersUrl, customer, { items: [{ productId: scarce, quantity: 1 }] })).body.id as string;
    await eventually(async () => expect((await reservationOf(rival)).status).toBeDefined());

    // Act: the payments are captured now, after the reservations expired
    await system.startLater('payment-service');

    // Assert: the first order is sold from what is still on sale...
    await eventually(async () => expect(await statusOf(customer, kept)).toMatchObject({ status: 'CONFIRMED' }));
    await eventually(async () => expect((await reservationOf(kept)).status).toBe('COMMITTED'));
    // ...of the two scarce orders one is sold, the other refunded and cancelled: never CONFIRMED with nothing sold
    const [sold, failed] = await eventually(async () => {
      const outcomes = await Promise.all([late, rival].map(async (id) => ({ id, ...(await statusOf(customer, id)) })));
      const confirmed = outcomes.filter((o) => o.status === 'CONFIRMED');
      const cancelled = outcomes.filter((o) => o.status === 'CANCELLED');
      expect([confirmed.length, cancelled.length]).toEqual([1, 1]);
      expect(cancelled[0].reason).toBe('out_of_stock');
      return [confirmed[0].id, cancelled[0].id];
    });
    expect((await reservationOf(sold)).status).toBe('COMMITTED');
    const payments = system.payments!.service.url;
    await eventually(async () => {
      const { items } = (await request(payments).get('/payments').query({ orderId: failed }).set('authorization', customer.token)).body;
      expect(items).toEqual([expect.objectContaining({ status: 'REFUNDED', amountCents: 800 })]);
    });
    const history = await rows<{ status: string }>(system.orders!.service.ctx.sequelize, 'SELECT status FROM order_history WHERE order_id = $1 ORDER BY id', [failed]);
    expect(history.map((h) => h.status)).toEqual(['PENDING', 'CONFIRMED', 'CANCELLED']);
    // stock conserved: initial = available + reserved + sold, nothing both sold and on sale
    await eventually(async () => expect(await stockOf(inventoryUrl, scarce)).toEqual({ available: 0, reserved: 0 }));
    expect(await soldOf(scarce)).toBe(1);
    expect(await stockOf(inventoryUrl, plenty)).toEqual({ available: 1, reserved: 0 });
    expect(await soldOf(plenty)).toBe(2);
    // and nothing was dead-lettered on the way
    const transport = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: system.prefix }, createLogger({ name: 'test', level: 'silent' }));
    try {
      for (const group of ['order-service', 'inventory-service', 'payment-service']) expect(await transport.listDeadLetters(group)).toEqual([]);
    } finally {
      await transport.close();
    }
  });
});
