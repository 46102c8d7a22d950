import request from 'supertest';
import { type System, eventually, newCustomer, placeOrder, rows, startSystem } from './support/system';

// payment-service is not running: every accepted order stays PENDING (awaiting payment).
let system: System;
let ordersUrl: string;
beforeAll(async () => {
  system = await startSystem({ without: ['payment-service'], env: { 'order-service': { ORDER_MAX_PENDING: '2', ORDER_ADMISSION_INTERVAL_MS: '50' } } });
  ordersUrl = system.orders!.service.url;
}, 60_000);
afterAll(async () => {
  await system.stop();
});

describe('admission control (ORDER_MAX_PENDING)', () => {
  it('when as many sagas as allowed are in flight, then a new order is 503 with retry-after and nothing is written; once one ends, orders are accepted again', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: 100 });
    const items = [{ productId, quantity: 1 }];
    const first = await placeOrder(ordersUrl, customer, { items });
    const second = await placeOrder(ordersUrl, customer, { items });
    expect([first.status, second.status]).toEqual([202, 202]);

    // Once counted, two sagas are in flight: new orders are shed before anything is written.
    await eventually(async () => expect((await request(ordersUrl).get('/metrics')).text).toMatch(/^saga_pending_orders(\{[^}]*\})? 2$/m));
    const key = 'shed-key';
    const shed = await placeOrder(ordersUrl, customer, { items, key });
    expect(shed.status).toBe(503);
    expect(shed.headers['retry-after']).toBe('1');
    expect(shed.body).toEqual({ error: { code: 'service_unavailable', message: expect.any(String) } });
    const sequelize = system.orders!.service.ctx.sequelize;
    expect(await rows(sequelize, 'SELECT 1 FROM idempotency_keys WHERE key = $1', [key])).toEqual([]);
    expect(await rows(sequelize, 'SELECT id FROM orders WHERE user_id = $1', [customer.id])).toHaveLength(2);

    // A saga ends (the customer cancels): the retry with the same key is accepted.
    expect((await request(ordersUrl).post(`/orders/${first.body.id}/cancel`).set('authorization', customer.token)).status).toBe(200);
    const retried = await eventually(async () => {
      const res = await placeOrder(ordersUrl, customer, { items, key });
      expect(res.status).toBe(202);
      return res;
    });
    expect(retried.body.status).toBe('PENDING');
  });
});
