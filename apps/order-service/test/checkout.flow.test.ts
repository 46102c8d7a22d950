import { randomUUID } from 'node:crypto';
import request from 'supertest';
import {
  type Customer,
  type System,
  adminToken,
  eventually,
  finalOrder,
  newCustomer,
  placeOrder,
  rows,
  startSystem,
  stockOf,
} from './support/system';

let system: System;
let ordersUrl: string;
let inventoryUrl: string;
/** payment-service is restarted by one test, on a new port. */
const paymentsUrl = () => system.payments!.service.url;

beforeAll(async () => {
  system = await startSystem();
  ordersUrl = system.orders!.service.url;
  inventoryUrl = system.inventory!.service.url;
}, 60_000);
afterAll(async () => {
  await system.stop();
});

const paymentsOf = async (customer: Customer, orderId: string) => {
  const res = await request(paymentsUrl()).get('/payments').query({ orderId }).set('authorization', customer.token);
  expect(res.status).toBe(200);
  return res.body.items as { id: string; orderId: string; status: string; amountCents: number; currency: string }[];
};

describe('checkout saga: POST /orders', () => {
  it('when paid with tok_visa, then 202 PENDING priced from the catalog, then CONFIRMED, the payment CAPTURED and the units sold', async () => {
    // Arrange
    const customer = newCustomer();
    const shoe = await system.stockedProduct({ priceCents: 2500, available: 10 });
    const sock = await system.stockedProduct({ priceCents: 300, available: 5 });

    // Act
    const res = await placeOrder(ordersUrl, customer, { items: [{ productId: shoe, quantity: 2 }, { productId: sock, quantity: 3 }] });

    // Assert: accepted with server-side prices...
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      userId: customer.id,
      status: 'PENDING',
      totalCents: 2 * 2500 + 3 * 300,
      currency: 'USD',
      items: [
        { productId: shoe, quantity: 2, unitPriceCents: 2500 },
        { productId: sock, quantity: 3, unitPriceCents: 300 },
      ],
    });
    // ...then the saga confirms it
    const order = await finalOrder(ordersUrl, customer, res.body.id);
    expect(order).toMatchObject({ status: 'CONFIRMED', totalCents: 5900 });
    expect(order.reason).toBeUndefined();
    // every state the order went through is in its history, in order
    expect(await rows(system.orders!.service.ctx.sequelize, 'SELECT status, step, reason FROM order_history WHERE order_id = $1 ORDER BY id', [res.body.id])).toEqual([
      { status: 'PENDING', step: 'AWAITING_STOCK', reason: null },
      { status: 'CONFIRMED', step: 'DONE', reason: null },
    ]);
    expect(await paymentsOf(customer, res.body.id)).toEqual([expect.objectContaining({ orderId: res.body.id, status: 'CAPTURED', amountCents: 5900, currency: 'USD' })]);
    // committed: available went down and nothing stays reserved
    await eventually(async () => {
      expect(await stockOf(inventoryUrl, shoe)).toEqual({ available: 8, reserved: 0 });
      expect(await stockOf(inventoryUrl, sock)).toEqual({ available: 2, reserved: 0 });
    });
  });

  it('when the card is declined, then the order is CANCELLED with reason payment_declined and the reserved stock is released', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: 4 });

    const res = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 3 }], token: 'tok_chargeDeclined' });

    expect(res.status).toBe(202);
    expect(await finalOrder(ordersUrl, customer, res.body.id)).toMatchObject({ status: 'CANCELLED', reason: 'payment_declined' });
    expect(await paymentsOf(customer, res.body.id)).toEqual([expect.objectContaining({ status: 'DECLINED' })]);
    await eventually(async () => expect(await stockOf(inventoryUrl, productId)).toEqual({ available: 4, reserved: 0 }));
  });

  it('when one item is out of stock, then the order is CANCELLED with reason out_of_stock, nothing is reserved and no payment is made', async () => {
    const customer = newCustomer();
    const plenty = await system.stockedProduct({ available: 10 });
    const scarce = await system.stockedProduct({ available: 1 });

    const res = await placeOrder(ordersUrl, customer, { items: [{ productId: plenty, quantity: 1 }, { productId: scarce, quantity: 2 }] });

    expect(res.status).toBe(202);
    expect(await finalOrder(ordersUrl, customer, res.body.id)).toMatchObject({ status: 'CANCELLED', reason: 'out_of_stock' });
    expect(await stockOf(inventoryUrl, plenty)).toEqual({ available: 10, reserved: 0 });
    expect(await stockOf(inventoryUrl, scarce)).toEqual({ available: 1, reserved: 0 });
    expect(await paymentsOf(customer, res.body.id)).toEqual([]);
  });

  it('when the same Idempotency-Key is sent again with the same body, then 200 with the same order and nothing new is created', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: 10 });
    const key = randomUUID();
    const items = [{ productId, quantity: 1 }];

    const first = await placeOrder(ordersUrl, customer, { items, key });
    const [again, concurrent] = await Promise.all([placeOrder(ordersUrl, customer, { items, key }), placeOrder(ordersUrl, customer, { items, key })]);

    expect(first.status).toBe(202);
    expect(again.status).toBe(200);
    expect(concurrent.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(concurrent.body.id).toBe(first.body.id);
    const list = await request(ordersUrl).get('/orders').set('authorization', customer.token);
    expect(list.body.total).toBe(1);
    const placed = await rows<{ n: string }>(system.orders!.service.ctx.sequelize, "SELECT count(*) AS n FROM outbox WHERE type = 'OrderPlaced' AND aggregate_id = $1", [first.body.id]);
    expect(Number(placed[0].n)).toBe(1);
  });

  it('when the same Idempotency-Key comes with a different body, then 409 and the first order is untouched', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: 10 });
    const key = randomUUID();
    const first = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }], key });

    const res = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 2 }], key });

    expect(first.status).toBe(202);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    expect((await request(ordersUrl).get('/orders').set('authorization', customer.token)).body.total).toBe(1);
  });

  it('when another user reuses a key, then it is a different order (keys are per user)', async () => {
    const productId = await system.stockedProduct({ available: 10 });
    const key = randomUUID();

    const mine = await placeOrder(ordersUrl, newCustomer(), { items: [{ productId, quantity: 1 }], key });
    const theirs = await placeOrder(ordersUrl, newCustomer(), { items: [{ productId, quantity: 1 }], key });

    expect([mine.status, theirs.status]).toEqual([202, 202]);
    expect(theirs.body.id).not.toBe(mine.body.id);
  });

  it('when the Idempotency-Key header is missing, then 400 naming the header', async () => {
    const productId = await system.stockedProduct();

    const res = await placeOrder(ordersUrl, newCustomer(), { items: [{ productId, quantity: 1 }], key: null });

    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([expect.objectContaining({ location: 'headers', path: 'idempotency-key' })]);
  });

  it('when the card token is not a sandbox token and a quantity is zero, then 400 listing both fields', async () => {
    const productId = await system.stockedProduct();

    const res = await placeOrder(ordersUrl, newCustomer(), { items: [{ productId, quantity: 0 }], token: 'tok_stolen' });

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['items.0.quantity', 'paymentMethod.token']);
  });

  it('when an item is unknown or soft-deleted in the catalog, then 400 listing those items and no order', async () => {
    const customer = newCustomer();
    const good = await system.stockedProduct();
    const deleted = await system.stockedProduct();
    await request(system.products.service.url).delete(`/products/${deleted}`).set('authorization', adminToken).expect(204);
    // Prices come from order-service's read model of the catalog: the deletion counts once its event arrived.
    await eventually(async () =>
      expect(await rows(system.orders!.service.ctx.sequelize, 'SELECT active FROM product_prices WHERE product_id = $1', [deleted])).toEqual([{ active: false }]),
    );

    const res = await placeOrder(ordersUrl, customer, { items: [{ productId: good, quantity: 1 }, { productId: randomUUID(), quantity: 1 }, { productId: deleted, quantity: 1 }] });

    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toEqual(['items.1.productId', 'items.2.productId']);
    expect((await request(ordersUrl).get('/orders').set('authorization', customer.token)).body.total).toBe(0);
  });

  it('when the client sends a price, then 400: prices come from the catalog only', async () => {
    const productId = await system.stockedProduct();

    const res = await request(ordersUrl)
      .post('/orders')
      .set('authorization', newCustomer().token)
      .set('idempotency-key', randomUUID())
      .send({ items: [{ productId, quantity: 1, unitPriceCents: 1 }], paymentMethod: { type: 'card', token: 'tok_visa' } });

    expect(res.status).toBe(400);
  });

  it('when there is no token, then 401', async () => {
    const res = await request(ordersUrl).post('/orders').set('idempotency-key', randomUUID()).send({});
    expect(res.status).toBe(401);
  });
});

describe('checkout saga: cancel and refund', () => {
  it('when the user cancels while the payment step is pending, then CANCELLED cancelled_by_user, stock is released, and a capture arriving later is refunded', async () => {
    // Arrange: payment-service is down, so the order waits on its payment step
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: 5 });
    await system.payments!.service.stop();
    const placed = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 2 }] });
    await eventually(async () => expect(await stockOf(inventoryUrl, productId)).toEqual({ available: 3, reserved: 2 }));
    // ...and inventory has passed the payment request on (StockReserved carries it to payment-service)
    await eventually(async () =>
      expect(await rows(system.inventory!.service.ctx.sequelize, "SELECT 1 FROM outbox WHERE type = 'StockReserved' AND aggregate_id = $1 AND envelope->'payload'->'payment' IS NOT NULL", [placed.body.id])).toHaveLength(1),
    );

    // Act
    const res = await request(ordersUrl).post(`/orders/${placed.body.id}/cancel`).set('authorization', customer.token);

    // Assert
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: placed.body.id, status: 'CANCELLED', reason: 'cancelled_by_user' });
    await eventually(async () => expect(await stockOf(inventoryUrl, productId)).toEqual({ available: 5, reserved: 0 }));
    // payment-service comes back and meets StockReserved (inventory's stream) and OrderCancelled
    // (order-service's): capture then refund, or, when the cancel is handled first, a tombstone that
    // makes the request a no-op (no payment to show). Never a capture that stays.
    await system.payments!.restart();
    await eventually(async () => {
      const handled = await rows(system.payments!.service.ctx.sequelize, "SELECT 1 FROM payments WHERE order_id = $1 AND status IN ('REFUNDED', 'CANCELLED')", [placed.body.id]);
      expect(handled).toHaveLength(1);
    });
    expect((await paymentsOf(customer, placed.body.id)).map((p: { status: string }) => p.status)).not.toContain('CAPTURED');
    expect((await request(ordersUrl).get(`/orders/${placed.body.id}`).set('authorization', customer.token)).body).toMatchObject({ status: 'CANCELLED', reason: 'cancelled_by_user' });
    // cancelling again returns it as it is
    const again = await request(ordersUrl).post(`/orders/${placed.body.id}/cancel`).set('authorization', customer.token);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('CANCELLED');
  }, 40_000);

  it('when the order is CONFIRMED, then cancelling is 409 and the order stays CONFIRMED', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct();
    const placed = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }] });
    expect((await finalOrder(ordersUrl, customer, placed.body.id)).status).toBe('CONFIRMED');

    const res = await request(ordersUrl).post(`/orders/${placed.body.id}/cancel`).set('authorization', customer.token);

    expect(res.status).toBe(409);
    expect((await request(ordersUrl).get(`/orders/${placed.body.id}`).set('authorization', customer.token)).body.status).toBe('CONFIRMED');
  });

  it('when an admin refunds the payment of a confirmed order, then the payment is REFUNDED, the order REFUNDED and the units are back on sale', async () => {
    // Arrange
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: 6 });
    const placed = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 4 }] });
    expect((await finalOrder(ordersUrl, customer, placed.body.id)).status).toBe('CONFIRMED');
    await eventually(async () => expect(await stockOf(inventoryUrl, productId)).toEqual({ available: 2, reserved: 0 }));
    const [payment] = await paymentsOf(customer, placed.body.id);

    // Act
    const res = await request(paymentsUrl()).post(`/payments/${payment.id}/refund`).set('authorization', adminToken);

    // Assert
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: payment.id, orderId: placed.body.id, status: 'REFUNDED', amountCents: payment.amountCents });
    await eventually(async () => expect((await request(ordersUrl).get(`/orders/${placed.body.id}`).set('authorization', customer.token)).body.status).toBe('REFUNDED'));
    await eventually(async () => expect(await stockOf(inventoryUrl, productId)).toEqual({ available: 6, reserved: 0 }));
    // a second refund changes nothing
    const again = await request(paymentsUrl()).post(`/payments/${payment.id}/refund`).set('authorization', adminToken);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('REFUNDED');
    expect((await request(ordersUrl).post(`/orders/${placed.body.id}/cancel`).set('authorization', customer.token)).status).toBe(409);
  });

  it('when a customer asks for a refund, then 403', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct();
    const placed = await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }] });
    await finalOrder(ordersUrl, customer, placed.body.id);
    const [payment] = await paymentsOf(customer, placed.body.id);

    const res = await request(paymentsUrl()).post(`/payments/${payment.id}/refund`).set('authorization', customer.token);

    expect(res.status).toBe(403);
    expect((await paymentsOf(customer, placed.body.id))[0].status).toBe('CAPTURED');
  });
});

describe('checkout saga: reading orders and payments', () => {
  it('when another customer asks for an order or its payments, then 404 and an empty list; an admin sees both', async () => {
    const owner = newCustomer();
    const stranger = newCustomer();
    const productId = await system.stockedProduct();
    const placed = await placeOrder(ordersUrl, owner, { items: [{ productId, quantity: 1 }] });
    await finalOrder(ordersUrl, owner, placed.body.id);

    expect((await request(ordersUrl).get(`/orders/${placed.body.id}`).set('authorization', stranger.token)).status).toBe(404);
    expect((await request(ordersUrl).post(`/orders/${placed.body.id}/cancel`).set('authorization', stranger.token)).status).toBe(404);
    expect(await paymentsOf(stranger, placed.body.id)).toEqual([]);
    const asAdmin = await request(ordersUrl).get(`/orders/${placed.body.id}`).set('authorization', adminToken);
    expect(asAdmin.status).toBe(200);
    expect(asAdmin.body.userId).toBe(owner.id);
    const adminPayments = await request(paymentsUrl()).get('/payments').query({ orderId: placed.body.id }).set('authorization', adminToken);
    expect(adminPayments.body.items).toHaveLength(1);
  });

  it("when a customer lists orders, then only theirs, newest first, paginated", async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }] })).body.id);
    await placeOrder(ordersUrl, newCustomer(), { items: [{ productId, quantity: 1 }] });

    const page1 = await request(ordersUrl).get('/orders').query({ limit: 2 }).set('authorization', customer.token);
    const page2 = await request(ordersUrl).get('/orders').query({ limit: 2, page: 2 }).set('authorization', customer.token);

    expect(page1.status).toBe(200);
    expect(page1.body).toMatchObject({ page: 1, limit: 2, total: 3 });
    expect([...page1.body.items, ...page2.body.items].map((o: { id: string }) => o.id)).toEqual([...ids].reverse());
  });

  it('when sagas end, then order-service meters saga_outcomes_total and the duration histogram, and payment-service payments_total', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct();
    await finalOrder(ordersUrl, customer, (await placeOrder(ordersUrl, customer, { items: [{ productId, quantity: 1 }] })).body.id);

    const orderMetrics = (await request(ordersUrl).get('/metrics')).text;
    const paymentMetrics = (await request(paymentsUrl()).get('/metrics')).text;

    expect(orderMetrics).toMatch(/saga_outcomes_total\{[^}]*outcome="confirmed"[^}]*\} [1-9]/);
    expect(orderMetrics).toMatch(/saga_duration_seconds_count\{[^}]*outcome="confirmed"[^}]*\} [1-9]/);
    expect(paymentMetrics).toMatch(/payments_total\{[^}]*status="CAPTURED"[^}]*\} [1-9]/);
  });
});
