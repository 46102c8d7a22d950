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

describe('admission control and invalid requests', () => {
  // In-flight sagas are counted once at start (0) and then not for a minute: only what admission
  // itself counts in between can fill the 3 slots.
  let counted: System;
  beforeAll(async () => {
    counted = await startSystem({ without: ['payment-service'], env: { 'order-service': { ORDER_MAX_PENDING: '3', ORDER_ADMISSION_INTERVAL_MS: '60000' } } });
  }, 60_000);
  afterAll(async () => {
    await counted.stop();
  });

  it('when invalid bodies and requests without an Idempotency-Key flood POST /orders, then they are 400 and take no slot: a valid order is still accepted', async () => {
    const customer = newCustomer();
    const url = counted.orders!.service.url;
    const productId = await counted.stockedProduct({ available: 10 });
    const post = () => request(url).post('/orders').set('authorization', customer.token);

    const garbage = await Promise.all([
      post().set('idempotency-key', 'g1').send({ items: [] }),
      post().set('idempotency-key', 'g2').send({ items: [{ productId, quantity: -1 }], paymentMethod: { type: 'card', token: 'tok_visa' } }),
      post().set('idempotency-key', 'g3').send('not json at all'),
      post().send({ items: [{ productId, quantity: 1 }], paymentMethod: { type: 'card', token: 'tok_visa' } }), // no key
      post().set('idempotency-key', 'g5').send({ items: [{ productId, quantity: 1 }], paymentMethod: { type: 'card', token: 'tok_stolen' } }),
    ]);
    const accepted = await placeOrder(url, customer, { items: [{ productId, quantity: 1 }] });

    expect(garbage.map((r) => r.status)).toEqual([400, 400, 400, 400, 400]);
    for (const res of garbage) expect(res.body.error).toMatchObject({ code: 'validation_failed' });
    expect(accepted.status).toBe(202);
    expect(await rows(counted.orders!.service.ctx.sequelize, 'SELECT id FROM orders WHERE user_id = $1', [customer.id])).toHaveLength(1);
  });
});
