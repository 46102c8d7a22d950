import { randomUUID } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import { type Sequelize, createSequelize, dbOf, migrate } from '@cloudretail/db';
import { createLogger } from '@cloudretail/logging';
import { Registry } from '@cloudretail/metrics';
import { createTestDatabase } from '@cloudretail/testing';
import { migrations } from '../src/data-access/migrations';
import { sagaAdmission } from '../src/entry-points/api/saga-admission';
import { type System, eventually, newCustomer, placeOrder, rows, startSystem } from './support/system';

const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1]);

describe('admission control in the running service', () => {
  // payment-service is not running: every accepted order stays PENDING (awaiting payment), and
  // nothing finishes, so the limit is the floor.
  let system: System;
  let ordersUrl: string;
  beforeAll(async () => {
    system = await startSystem({
      without: ['payment-service'],
      env: { 'order-service': { ORDER_MIN_PENDING: '2', ORDER_MAX_PENDING: '50', ORDER_THROUGHPUT_WINDOW_MS: '5000', ORDER_ADMISSION_INTERVAL_MS: '50' } },
    });
    ordersUrl = system.orders!.service.url;
  }, 60_000);
  afterAll(async () => {
    await system.stop();
  });

  it('when nothing has finished yet, then the floor is admitted; past it a new order is 503 with retry-after and nothing is written; once one ends, orders are accepted again', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: 100 });
    const items = [{ productId, quantity: 1 }];
    const first = await placeOrder(ordersUrl, customer, { items });
    const second = await placeOrder(ordersUrl, customer, { items });
    expect([first.status, second.status]).toEqual([202, 202]);

    // Once counted, the floor's two sagas are in flight: new orders are shed before anything is written.
    await eventually(async () => {
      const text = (await request(ordersUrl).get('/metrics')).text;
      expect([metric(text, 'saga_pending_orders'), metric(text, 'saga_admission_limit')]).toEqual([2, 2]);
    });
    const key = 'shed-key';
    const shed = await placeOrder(ordersUrl, customer, { items, key });
    expect(shed.status).toBe(503);
    expect(shed.headers['retry-after']).toBe('5'); // nothing finishing: no rate to wait on, so the window
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
    counted = await startSystem({ without: ['payment-service'], env: { 'order-service': { ORDER_MIN_PENDING: '3', ORDER_MAX_PENDING: '3', ORDER_ADMISSION_INTERVAL_MS: '60000' } } });
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

/**
 * The limit on its own, on a database of each test's: the test writes a known history into
 * `orders` (sagas finished within the window, sagas in flight), counts with `refresh()` instead of
 * waiting for the timer, and sends requests through the guard alone.
 */
describe('the admission limit follows measured throughput (ORDER_TARGET_LATENCY_MS)', () => {
  // 1 s target and a 60 s window: N sagas finished in the window are N/60 per second, a limit of N/60.
  const settings = { targetLatencyMs: 1000, minPending: 3, maxPending: 50, windowMs: 60_000 };
  const logger = createLogger({ name: 'admission-test', level: (process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent' });
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A migrated database and admission control on it (its timer idle for an hour), behind a bare POST /orders. */
  async function admissionOnOwnDatabase() {
    const database = await createTestDatabase('orders_admission');
    cleanups.push(database.drop);
    const sequelize = createSequelize(database.url);
    cleanups.push(() => sequelize.close());
    await migrate(sequelize, migrations, 'up');
    const registry = new Registry();
    const admission = sagaAdmission({ db: dbOf(sequelize), ...settings, intervalMs: 3_600_000, logger, registry });
    cleanups.push(() => admission.closer.close());
    await admission.refresh(); // the count at start
    const app = express().post('/orders', admission.guard, (_req, res) => {
      res.status(202).end();
    });
    const gauge = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values[0].value;
    return { sequelize, admission, post: () => request(app).post('/orders'), gauge };
  }

  /** `count` orders in `status`, last changed evenly over the `spreadSeconds` before `agoSeconds` ago (a steady rate). */
  const insertOrders = (sequelize: Sequelize, count: number, status: 'PENDING' | 'CONFIRMED' | 'CANCELLED', { spreadSeconds = 60, agoSeconds = 0 } = {}) =>
    sequelize.query(
      `INSERT INTO orders (id, user_id, status, step, total_cents, currency, updated_at)
       SELECT gen_random_uuid(), $1, $2, CASE WHEN $2 = 'PENDING' THEN 'AWAITING_PAYMENT' ELSE 'DONE' END, 100, 'EUR',
              now() - ($4 + $5 * (g - 0.5) / $3) * interval '1 second'
       FROM generate_series(1, $3) AS g`,
      { bind: [randomUUID(), status, count, agoSeconds, spreadSeconds] },
    );

  const statuses = (responses: request.Response[]) => responses.map((r) => r.status);
  async function postSequentially(post: () => request.Test, times: number) {
    const responses: request.Response[] = [];
    for (let i = 0; i < times; i++) responses.push(await post());
    return responses;
  }

  it('when 600 sagas finished in the last minute (10/s), then the limit is 10/s × 1 s: 10 in flight are admitted and the 11th is shed', async () => {
    const { sequelize, admission, post, gauge } = await admissionOnOwnDatabase();
    await insertOrders(sequelize, 400, 'CONFIRMED');
    await insertOrders(sequelize, 200, 'CANCELLED');
    await insertOrders(sequelize, 1000, 'CONFIRMED', { agoSeconds: 120, spreadSeconds: 0 }); // before the window: not part of the rate
    await insertOrders(sequelize, 7, 'PENDING', { spreadSeconds: 1 });

    await admission.refresh();

    expect(await gauge('saga_admission_limit')).toBe(10);
    expect(await gauge('saga_pending_orders')).toBe(7);
    const responses = await postSequentially(post, 4);
    expect(statuses(responses)).toEqual([202, 202, 202, 503]);
    expect(responses[3].headers['retry-after']).toBe('1');
    expect(responses[3].body).toEqual({ error: { code: 'service_unavailable', message: expect.any(String) } });
  });

  it('when throughput rises, then the limit rises with it, up to ORDER_MAX_PENDING and never beyond', async () => {
    const { sequelize, admission, gauge } = await admissionOnOwnDatabase();
    await insertOrders(sequelize, 1200, 'CONFIRMED');
    await admission.refresh();
    expect(await gauge('saga_admission_limit')).toBe(20);

    await insertOrders(sequelize, 1200, 'CONFIRMED');
    await admission.refresh();
    // 2,400 in the window less the few of the first 1,200 that aged out of it meanwhile
    const doubled = await gauge('saga_admission_limit');
    expect(doubled).toBeGreaterThanOrEqual(38);
    expect(doubled).toBeLessThanOrEqual(40);

    await insertOrders(sequelize, 6000, 'CONFIRMED'); // 140/s: a limit of 140 by the rate alone
    await admission.refresh();
    expect(await gauge('saga_admission_limit')).toBe(50);
  });

  it('when sagas start finishing after an idle spell, then the limit follows the new rate within a second, not over the whole window', async () => {
    const { sequelize, admission, gauge } = await admissionOnOwnDatabase();
    await insertOrders(sequelize, 20, 'CONFIRMED', { spreadSeconds: 2 }); // 10/s for the last 2 s of a 60 s window

    await admission.refresh();

    // 20 ÷ 2 s = 10/s (20 ÷ 60 s would be 0.33/s: the floor, and a slow ramp after every start)
    expect(await gauge('saga_admission_limit')).toBe(10);
  });

  it('when little or nothing finishes, then the floor (ORDER_MIN_PENDING) is still admitted', async () => {
    const { sequelize, admission, post, gauge } = await admissionOnOwnDatabase();
    expect(await gauge('saga_admission_limit')).toBe(3);
    const first = await postSequentially(post, 4);
    expect(statuses(first)).toEqual([202, 202, 202, 503]);
    expect(first[3].headers['retry-after']).toBe('60'); // nothing finishing: no rate to wait on, so the window

    await insertOrders(sequelize, 60, 'CONFIRMED'); // 1/s × 1 s: 1, under the floor
    await admission.refresh();
    expect(await gauge('saga_admission_limit')).toBe(3);
    expect(await gauge('saga_pending_orders')).toBe(0); // the bare route wrote no order
    expect(statuses(await postSequentially(post, 4))).toEqual([202, 202, 202, 503]);
  });

  it('when far more sagas are in flight than the limit, then retry-after is the time the measured rate needs to make room', async () => {
    const { sequelize, admission, post } = await admissionOnOwnDatabase();
    await insertOrders(sequelize, 600, 'CONFIRMED'); // 10/s: a limit of 10
    await insertOrders(sequelize, 40, 'PENDING', { spreadSeconds: 1 });
    await admission.refresh();

    const shed = await post();

    // 31 sagas must finish before the 41st order fits under 10: 3.1 s at 10/s.
    expect(shed.status).toBe(503);
    expect(shed.headers['retry-after']).toBe('4');
  });
});
