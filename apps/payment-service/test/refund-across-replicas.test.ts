import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { QueryTypes } from '@cloudretail/db';
import { type Transport, createEvent, createTransport } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import { signTestToken, TEST_REDIS_URL, createTestDatabase, eventually, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

// Two replicas on one database, as Kubernetes runs them. Each gets a topic namespace of its own,
// so the test decides which replica handles which event.
const adminToken = `Bearer ${signTestToken({ userId: randomUUID(), role: 'admin' })}`;
const prefixes = { a: `t${randomUUID().slice(0, 8)}.`, b: `t${randomUUID().slice(0, 8)}.` };
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let replicas: { a: Awaited<ReturnType<typeof start>>; b: Awaited<ReturnType<typeof start>> };
let buses: { a: Transport; b: Transport };

beforeAll(async () => {
  db = await createTestDatabase('payments');
  const a = await start(testEnv(db.url, { EVENT_TOPIC_PREFIX: prefixes.a, OUTBOX_POLL_MS: '50', EVENT_RETRY_BACKOFF_MS: '50', EVENT_MAX_ATTEMPTS: '2' }));
  const b = await start(testEnv(db.url, { EVENT_TOPIC_PREFIX: prefixes.b, OUTBOX_POLL_MS: '50', EVENT_RETRY_BACKOFF_MS: '50', EVENT_MAX_ATTEMPTS: '2' }));
  replicas = { a, b };
  const logger = createLogger({ name: 'test', level: 'silent' });
  buses = {
    a: createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefixes.a }, logger),
    b: createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefixes.b }, logger),
  };
}, 60_000);
afterAll(async () => {
  await Promise.all([buses.a.close(), buses.b.close()]);
  await Promise.all([replicas.a.stop(), replicas.b.stop()]);
  await db.drop();
  const redis = new Redis(TEST_REDIS_URL);
  for (const prefix of Object.values(prefixes)) {
    const keys = [...(await redis.keys(`events:${prefix}*`)), ...(await redis.keys(`events:dlq.${prefix}*`))];
    if (keys.length) await redis.del(...keys);
  }
  redis.disconnect();
});

const query = <T extends object>(sql: string, bind: unknown[] = []) => replicas.a.ctx.sequelize.query<T>(sql, { bind, type: QueryTypes.SELECT });

/** A payment captured by replica A (its consumer handles the request). */
async function capturedByA() {
  const [orderId, userId] = [randomUUID(), randomUUID()];
  await buses.a.publish('orders', [createEvent('PaymentRequested', orderId, { orderId, userId, paymentToken: 'tok_visa', amountCents: 2500, currency: 'USD' })]);
  const [payment] = await eventually(async () => {
    const rows = await query<{ id: string; status: string }>('SELECT id, status FROM payments WHERE order_id = $1', [orderId]);
    expect(rows).toMatchObject([{ status: 'CAPTURED' }]);
    return rows;
  });
  return { orderId, userId, paymentId: payment.id };
}

describe('refunds on another replica', () => {
  it('when a payment captured by replica A is refunded through replica B, and again through A, then 200 REFUNDED both times and the provider refunded it once', async () => {
    const { orderId, paymentId } = await capturedByA();

    const first = await request(replicas.b.url).post(`/payments/${paymentId}/refund`).set('authorization', adminToken);
    const again = await request(replicas.a.url).post(`/payments/${paymentId}/refund`).set('authorization', adminToken);

    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ id: paymentId, status: 'REFUNDED' });
    expect(again.body).toEqual(first.body);
    expect(await query('SELECT r.amount_cents FROM sandbox_refunds r JOIN payments p ON p.provider_ref = r.charge_id WHERE p.id = $1', [paymentId])).toEqual([{ amount_cents: '2500' }]);
    expect((await query<{ type: string }>('SELECT type FROM outbox WHERE aggregate_id = $1 ORDER BY seq', [orderId])).map((r) => r.type)).toEqual(['PaymentCaptured', 'PaymentRefunded']);
  });

  it('when the order of a payment captured by replica A is cancelled and replica B handles the compensation, then it is refunded and nothing is dead-lettered', async () => {
    const { orderId, userId, paymentId } = await capturedByA();

    await buses.b.publish('orders', [createEvent('OrderCancelled', orderId, { orderId, userId, items: [{ productId: randomUUID(), quantity: 1 }], reason: 'timeout' })]);

    await eventually(async () => expect(await query('SELECT status FROM payments WHERE id = $1', [paymentId])).toEqual([{ status: 'REFUNDED' }]));
    expect(await buses.b.listDeadLetters('payment-service')).toEqual([]);
  });
});
