import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { QueryTypes, type Sequelize, createSequelize, dbOf } from '@cloudretail/db';
import { type EventEnvelope, type Transport, createEvent, createEventSigning, createTransport } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import { signTestToken, TEST_REDIS_URL, createTestDatabase, eventually, testEnv } from '@cloudretail/testing';
import { paymentRepository } from '../src/data-access/payment-repository';
import { createSandboxProvider } from '../src/data-access/sandbox-provider';
import type { PaymentRequest } from '../src/domain/payment';
import type { CaptureRequest, PaymentProvider } from '../src/domain/payment-provider';
import { paymentUseCases } from '../src/domain/payment-use-cases';
import { start } from '../src/main';

const auth = { sign: signTestToken };
const tokenOf = (userId: string, role: 'customer' | 'admin' = 'customer') => `Bearer ${auth.sign({ userId, role })}`;
const adminToken = tokenOf(randomUUID(), 'admin');

const prefix = `t${randomUUID().slice(0, 8)}.`;
let service: Awaited<ReturnType<typeof start>>;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let transport: Transport;
/** The sandbox provider's own pool for the use cases tests build, as main.ts gives it one. */
let sandboxPool: Sequelize;

beforeAll(async () => {
  db = await createTestDatabase('payments');
  service = await start(testEnv(db.url, { EVENT_TOPIC_PREFIX: prefix, OUTBOX_POLL_MS: '50', EVENT_RETRY_BACKOFF_MS: '50' }));
  sandboxPool = createSequelize(db.url, { poolMax: 2 });
  transport = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefix }, createLogger({ name: 'test', level: 'silent' }));
}, 60_000);
afterAll(async () => {
  await transport.close();
  await sandboxPool.close();
  await service.stop();
  await db.drop();
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

const query = <T extends object>(sql: string, bind: unknown[] = []) => service.ctx.sequelize.query<T>(sql, { bind, type: QueryTypes.SELECT });
const paymentRequested = (orderId: string, userId: string, paymentToken = 'tok_visa', amountCents = 4200) =>
  createEvent('PaymentRequested', orderId, { orderId, userId, paymentToken, amountCents, currency: 'USD' });
const orderCancelled = (orderId: string, userId: string) => createEvent('OrderCancelled', orderId, { orderId, userId, items: [{ productId: randomUUID(), quantity: 1 }], reason: 'timeout' });
const outboxTypes = async (orderId: string) => (await query<{ type: string }>('SELECT type FROM outbox WHERE aggregate_id = $1 ORDER BY seq', [orderId])).map((r) => r.type);
const historyOf = async (orderId: string) =>
  (await query<{ status: string }>('SELECT h.status FROM payment_status_history h JOIN payments p ON p.id = h.payment_id WHERE p.order_id = $1 ORDER BY h.id', [orderId])).map((r) => r.status);
const stockReserved = (orderId: string, userId: string, paymentToken = 'tok_visa') =>
  createEvent('StockReserved', orderId, {
    orderId,
    items: [{ productId: randomUUID(), quantity: 1 }],
    payment: { paymentId: randomUUID(), userId, paymentToken, amountCents: 4200, currency: 'USD' },
  });
const publish = (...events: EventEnvelope[]) => transport.publish('orders', events);
const publishInventory = (...events: EventEnvelope[]) => transport.publish('inventory', events);
const inboxed = async (...events: EventEnvelope[]) =>
  eventually(async () => expect(await query('SELECT event_id FROM inbox WHERE event_id = ANY($1)', [events.map((e) => e.id)])).toHaveLength(new Set(events.map((e) => e.id)).size));

/**
 * Runs `act` while the consumer is held inside a batch (its claim of another order waits on a row
 * this test has written and not yet committed), so that what `act` publishes is read meanwhile and
 * handled as one next batch.
 */
async function asOneBatch(act: () => Promise<void>, topics: string[]) {
  const [blocker, userId] = [randomUUID(), randomUUID()];
  let release = () => undefined as void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const holding = service.ctx.db.transaction(async (tx) => {
    await tx.execute("INSERT INTO payments (id, order_id, status) VALUES ($1, $2, 'CANCELLED')", [randomUUID(), blocker]);
    await released;
  });
  const redis = new Redis(TEST_REDIS_URL);
  try {
    await publish(paymentRequested(blocker, userId));
    await eventually(async () => expect(await query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")).not.toEqual([]));
    await act();
    // Read (so queued for the next batch) once the last entry of each topic is pending: a stream is read in order.
    for (const key of topics.map((topic) => `events:${prefix}${topic}`)) {
      const [[last]] = await redis.xrevrange(key, '+', '-', 'COUNT', 1);
      await eventually(async () => expect(((await redis.xpending(key, `${prefix}payment-service`)) as [number, string, string])[2]).toBe(last));
    }
  } finally {
    release();
    await holding;
    redis.disconnect();
  }
}
const useCasesWith = (provider: PaymentProvider) => paymentUseCases({ db: service.ctx.db, payments: paymentRepository(service.ctx.db), provider });


describe('PaymentRequested', () => {
  it('when the same request is delivered twice and a duplicate request follows, then the order is captured once and PaymentCaptured published once', async () => {
    // Arrange
    const [orderId, userId] = [randomUUID(), randomUUID()];
    const event = paymentRequested(orderId, userId);
    const duplicate = paymentRequested(orderId, userId);

    // Act: the same event twice (a replay) and a second event for the same order
    await publish(event, event, duplicate);

    // Assert
    await eventually(async () => expect(await query('SELECT event_id FROM inbox WHERE event_id = ANY($1)', [[event.id, duplicate.id]])).toHaveLength(2));
    expect(await historyOf(orderId)).toEqual(['PENDING', 'CAPTURED']);
    expect(await outboxTypes(orderId)).toEqual(['PaymentCaptured']);
    const list = await request(service.url).get('/payments').query({ orderId }).set('authorization', tokenOf(userId));
    expect(list.body).toMatchObject({ total: 1, items: [{ orderId, status: 'CAPTURED', amountCents: 4200, currency: 'USD' }] });
  });

  it('when the use-case is called concurrently for one order, then the provider charges once', async () => {
    const sandbox = createSandboxProvider(dbOf(sandboxPool));
    const useCases = useCasesWith(sandbox);
    const request = { orderId: randomUUID(), userId: randomUUID(), amountCents: 999, currency: 'USD', paymentToken: 'tok_mastercard' };

    const results = await Promise.all(Array.from({ length: 5 }, () => useCases.requestPayment(request)));

    expect(new Set(results.map((p) => p.id)).size).toBe(1);
    expect(results.every((p) => p.status === 'CAPTURED')).toBe(true);
    expect(await sandbox.capturedCount(request.orderId)).toBe(1);
    expect(await historyOf(request.orderId)).toEqual(['PENDING', 'CAPTURED']);
  });

  it('when the card is declined, then the payment is DECLINED with the reason and PaymentDeclined is published', async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];

    await publish(paymentRequested(orderId, userId, 'tok_chargeDeclined'));

    await eventually(async () => expect(await outboxTypes(orderId)).toEqual(['PaymentDeclined']));
    const [payment] = (await request(service.url).get('/payments').query({ orderId }).set('authorization', tokenOf(userId))).body.items;
    expect(payment).toMatchObject({ status: 'DECLINED', declineReason: 'card_declined' });
  });
});

describe('StockReserved (the saga without the PaymentRequested hop)', () => {
  it('when a StockReserved carries the payment, also delivered twice, then the order is captured once under the payment id order-service chose', async () => {
    // Arrange
    const [orderId, userId] = [randomUUID(), randomUUID()];
    const event = stockReserved(orderId, userId);

    // Act
    await publishInventory(event, event);

    // Assert
    await inboxed(event);
    expect(await historyOf(orderId)).toEqual(['PENDING', 'CAPTURED']);
    expect(await outboxTypes(orderId)).toEqual(['PaymentCaptured']);
    expect(await query('SELECT 1 FROM sandbox_charges WHERE idempotency_key = $1', [orderId])).toHaveLength(1);
    const list = await request(service.url).get('/payments').query({ orderId }).set('authorization', tokenOf(userId));
    expect(list.body).toMatchObject({ total: 1, items: [{ id: event.payload.payment!.paymentId, orderId, status: 'CAPTURED', amountCents: 4200, currency: 'USD' }] });
  });

  it('when a PaymentRequested for the same order arrives too (an order in flight during the upgrade), then it is still captured once', async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];
    const reserved = stockReserved(orderId, userId);
    const requested = paymentRequested(orderId, userId);

    await Promise.all([publishInventory(reserved, reserved), publish(requested, requested)]);

    await inboxed(reserved, requested);
    expect(await historyOf(orderId)).toEqual(['PENDING', 'CAPTURED']);
    expect(await outboxTypes(orderId)).toEqual(['PaymentCaptured']);
    expect(await query('SELECT 1 FROM sandbox_charges WHERE idempotency_key = $1', [orderId])).toHaveLength(1);
  });

  it('when the StockReserved (twice) and a PaymentRequested for the same order are handled in one batch, then it is captured once', async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];
    const reserved = stockReserved(orderId, userId);
    const requested = paymentRequested(orderId, userId);

    await asOneBatch(() => Promise.all([publishInventory(reserved, reserved), publish(requested)]).then(() => undefined), ['inventory', 'orders']);

    await inboxed(reserved, requested);
    expect(await historyOf(orderId)).toEqual(['PENDING', 'CAPTURED']);
    expect(await outboxTypes(orderId)).toEqual(['PaymentCaptured']);
    expect(await query('SELECT 1 FROM sandbox_charges WHERE idempotency_key = $1', [orderId])).toHaveLength(1);
  });

  it('when a StockReserved carries a declined card, then the payment is DECLINED and PaymentDeclined published', async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];

    await publishInventory(stockReserved(orderId, userId, 'tok_chargeDeclined'));

    await eventually(async () => expect(await outboxTypes(orderId)).toEqual(['PaymentDeclined']));
    expect(await historyOf(orderId)).toEqual(['PENDING', 'DECLINED']);
  });

  it('when a StockReserved carries no payment (an older inventory/order pair: PaymentRequested follows), then nothing is claimed or charged', async () => {
    const orderId = randomUUID();
    const event = createEvent('StockReserved', orderId, { orderId, items: [{ productId: randomUUID(), quantity: 2 }] });

    await publishInventory(event);

    await inboxed(event);
    expect(await query('SELECT 1 FROM payments WHERE order_id = $1', [orderId])).toEqual([]);
    expect(await query('SELECT 1 FROM sandbox_charges WHERE idempotency_key = $1', [orderId])).toEqual([]);
    expect(await outboxTypes(orderId)).toEqual([]);
  });
});

describe('a batch of requests', () => {
  const requestFor = (paymentToken = 'tok_visa'): PaymentRequest => ({ orderId: randomUUID(), userId: randomUUID(), paymentId: randomUUID(), amountCents: 1500, currency: 'USD', paymentToken });

  /** The sandbox, watched: what was committed when each capture began, and how many captures ran at once. */
  function watchedSandbox() {
    const sandbox = createSandboxProvider(dbOf(sandboxPool));
    const seen = { pendingAtCapture: [] as string[][], running: 0, maxRunning: 0 };
    const provider: PaymentProvider = {
      name: sandbox.name,
      refund: sandbox.refund,
      async capture(capture: CaptureRequest) {
        seen.running += 1;
        seen.maxRunning = Math.max(seen.maxRunning, seen.running);
        try {
          // Read on another connection: only committed claims are visible.
          seen.pendingAtCapture.push((await query<{ order_id: string }>("SELECT order_id FROM payments WHERE status = 'PENDING' AND order_id = $1", [capture.orderId])).map((r) => r.order_id));
          await new Promise((resolve) => setTimeout(resolve, 50));
          return await sandbox.capture(capture);
        } finally {
          seen.running -= 1;
        }
      },
    };
    return { provider, seen, sandbox };
  }

  it('when a batch asks for three payments (one of them twice), then each claim is committed before its capture, the captures run at once, and each order is charged once', async () => {
    // Arrange
    const { provider, seen, sandbox } = watchedSandbox();
    const useCases = useCasesWith(provider);
    const requests = [requestFor(), requestFor(), requestFor('tok_chargeDeclined')];
    const batch = [...requests, requests[0]];

    // Act: as the consumer does: ahead of the handlers, then each request in its turn
    const payments = await service.ctx.db.transaction(async (tx) => {
      await useCases.captureAhead(batch, tx);
      const results = [];
      for (const r of batch) results.push(await useCases.requestPayment(r, tx));
      return results;
    });

    // Assert
    expect(payments.map((p) => p.status)).toEqual(['CAPTURED', 'CAPTURED', 'DECLINED', 'CAPTURED']);
    expect(payments.map((p) => p.id)).toEqual(batch.map((r) => r.paymentId));
    expect(seen.pendingAtCapture).toHaveLength(3);
    expect(seen.pendingAtCapture.every((rows) => rows.length === 1)).toBe(true);
    expect(seen.maxRunning).toBe(3);
    for (const r of requests) expect(await query('SELECT 1 FROM sandbox_charges WHERE idempotency_key = $1', [r.orderId])).toHaveLength(1);
    expect(await sandbox.capturedCount(requests[0].orderId)).toBe(1);
    expect(await historyOf(requests[0].orderId)).toEqual(['PENDING', 'CAPTURED']);
  });

  it('when the provider fails during a batch, then the batch rolls back, its claims stay PENDING, and the retry captures each order once', async () => {
    const { provider, sandbox } = watchedSandbox();
    const failing: PaymentProvider = { ...provider, capture: async () => Promise.reject(new Error('provider unreachable')) };
    const requests = [requestFor(), requestFor()];

    await expect(service.ctx.db.transaction((tx) => useCasesWith(failing).captureAhead(requests, tx))).rejects.toThrow('provider unreachable');
    expect(await historyOf(requests[0].orderId)).toEqual(['PENDING']);

    const retried = await service.ctx.db.transaction(async (tx) => {
      const useCases = useCasesWith(provider);
      await useCases.captureAhead(requests, tx);
      return [await useCases.requestPayment(requests[0], tx), await useCases.requestPayment(requests[1], tx)];
    });

    expect(retried.map((p) => p.status)).toEqual(['CAPTURED', 'CAPTURED']);
    for (const r of requests) expect(await sandbox.capturedCount(r.orderId)).toBe(1);
    expect(await historyOf(requests[1].orderId)).toEqual(['PENDING', 'CAPTURED']);
  });
});

describe('dead-letter replay', () => {
  it('when a PaymentRequested that was meanwhile handled is replayed from the DLQ, twice, then nothing changes: one charge, one PaymentCaptured', async () => {
    // Arrange: the request is handled; a copy of it sits in the DLQ (dead-lettered during an outage while a redelivery got through)
    const [orderId, userId] = [randomUUID(), randomUUID()];
    const event = paymentRequested(orderId, userId);
    await publish(event);
    await eventually(async () => expect(await historyOf(orderId)).toEqual(['PENDING', 'CAPTURED']));
    const redis = new Redis(TEST_REDIS_URL);
    const raw = JSON.stringify(createEventSigning().sign(event)); // as order-service's relay published it
    await redis.xadd(`events:dlq.${prefix}payment-service`, '*', 'topic', `${prefix}orders`, 'reason', 'Error: connection terminated', 'attempts', '40', 'failedAt', new Date().toISOString(), 'envelope', raw);
    redis.disconnect();
    const [letter] = (await transport.listDeadLetters('payment-service')).filter((l) => (l.envelope as { id?: string }).id === event.id);

    // Act
    const replays = await Promise.all([transport.replayDeadLetter('payment-service', letter.id), transport.replayDeadLetter('payment-service', letter.id)]);
    expect(replays.sort()).toEqual([false, true]);
    await publish(event); // and once more by hand, the way an operator might

    // Assert: handled through the normal path (the inbox) and changing nothing
    await eventually(async () => expect((await transport.listDeadLetters('payment-service')).filter((l) => (l.envelope as { id?: string }).id === event.id)).toEqual([]));
    await new Promise((resolve) => setTimeout(resolve, 500)); // a second charge would appear now
    expect(await historyOf(orderId)).toEqual(['PENDING', 'CAPTURED']);
    expect(await outboxTypes(orderId)).toEqual(['PaymentCaptured']);
    expect(await query('SELECT 1 FROM sandbox_charges WHERE idempotency_key = $1', [orderId])).toHaveLength(1);
    expect(await query('SELECT 1 FROM inbox WHERE event_id = $1', [event.id])).toHaveLength(1);
  });
});

describe('unauthentic events', () => {
  it('when a PaymentRequested is written straight to the stream unsigned (as anyone with Redis access could), then nothing is charged and it is dead-lettered', async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];
    const forged = paymentRequested(orderId, userId);
    const redis = new Redis(TEST_REDIS_URL);

    await redis.xadd(`events:${prefix}orders`, '*', 'envelope', JSON.stringify(forged));
    redis.disconnect();

    const letter = await eventually(async () => {
      const found = (await transport.listDeadLetters('payment-service')).find((l) => (l.envelope as { id?: string }).id === forged.id);
      expect(found).toBeDefined();
      return found!;
    });
    expect(letter).toMatchObject({ attempts: 0, reason: expect.stringContaining('unauthentic event') });
    expect(await query('SELECT 1 FROM payments WHERE order_id = $1', [orderId])).toEqual([]);
    expect(await query('SELECT 1 FROM sandbox_charges WHERE idempotency_key = $1', [orderId])).toEqual([]);
    expect(await query('SELECT 1 FROM inbox WHERE event_id = $1', [forged.id])).toEqual([]);
  });
});

describe('OrderCancelled', () => {
  it('when the order is cancelled before its payment is requested, then a late PaymentRequested charges nothing', async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];

    const late = paymentRequested(orderId, userId);

    await publish(orderCancelled(orderId, userId), late);

    await eventually(async () => expect(await query('SELECT 1 FROM inbox WHERE event_id = $1', [late.id])).toHaveLength(1)); // the late request was handled...
    expect(await historyOf(orderId)).toEqual(['CANCELLED']); // ...and met the tombstone
    expect(await outboxTypes(orderId)).toEqual([]);
    expect((await request(service.url).get('/payments').query({ orderId }).set('authorization', adminToken)).body.items).toEqual([]);
  });

  it('when a captured order is cancelled (saga timeout), then the payment is refunded and PaymentRefunded published', async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];

    await publish(paymentRequested(orderId, userId), orderCancelled(orderId, userId));

    await eventually(async () => expect(await historyOf(orderId)).toEqual(['PENDING', 'CAPTURED', 'REFUNDED']));
    expect(await outboxTypes(orderId)).toEqual(['PaymentCaptured', 'PaymentRefunded']);
  });
});

describe('payments API', () => {
  const captured = async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];
    await publish(paymentRequested(orderId, userId));
    const payment = await eventually(async () => {
      const [found] = (await request(service.url).get('/payments').query({ orderId }).set('authorization', adminToken)).body.items;
      expect(found?.status).toBe('CAPTURED');
      return found as { id: string };
    });
    return { orderId, userId, paymentId: payment.id };
  };

  it('when an admin refunds a captured payment, then 200 REFUNDED with a history entry, PaymentRefunded, and payments_total counts it', async () => {
    const { orderId, userId, paymentId } = await captured();

    const res = await request(service.url).post(`/payments/${paymentId}/refund`).set('authorization', adminToken);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: paymentId, orderId, status: 'REFUNDED' });
    const detail = await request(service.url).get(`/payments/${paymentId}`).set('authorization', tokenOf(userId));
    expect(detail.body.history.map((h: { status: string }) => h.status)).toEqual(['PENDING', 'CAPTURED', 'REFUNDED']);
    expect(await outboxTypes(orderId)).toEqual(['PaymentCaptured', 'PaymentRefunded']);
    expect((await request(service.url).get('/metrics')).text).toMatch(/payments_total\{[^}]*status="REFUNDED"[^}]*\} [1-9]/);
  });

  it('when a declined payment is refunded, then 409; an unknown one 404; a customer 403', async () => {
    const [orderId, userId] = [randomUUID(), randomUUID()];
    await publish(paymentRequested(orderId, userId, 'tok_chargeDeclined'));
    const declined = await eventually(async () => {
      const [found] = (await request(service.url).get('/payments').query({ orderId }).set('authorization', adminToken)).body.items;
      expect(found?.status).toBe('DECLINED');
      return found as { id: string };
    });

    expect((await request(service.url).post(`/payments/${declined.id}/refund`).set('authorization', adminToken)).status).toBe(409);
    expect((await request(service.url).post(`/payments/${randomUUID()}/refund`).set('authorization', adminToken)).status).toBe(404);
    expect((await request(service.url).post(`/payments/${declined.id}/refund`).set('authorization', tokenOf(userId))).status).toBe(403);
  });

  it("when another customer reads someone's payment, then 404 and an empty list", async () => {
    const { orderId, paymentId } = await captured();
    const stranger = tokenOf(randomUUID());

    expect((await request(service.url).get(`/payments/${paymentId}`).set('authorization', stranger)).status).toBe(404);
    expect((await request(service.url).get('/payments').query({ orderId }).set('authorization', stranger)).body).toMatchObject({ items: [], total: 0 });
    expect((await request(service.url).get('/payments').query({ orderId })).status).toBe(401);
  });
});
