import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { type Transport, createEvent, createTransport, streamKey } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import { TEST_REDIS_URL } from '@cloudretail/testing';
import { type System, eventually, finalOrder, newCustomer, placeOrder, rows, startSystem } from './support/system';

// Only product- and order-service run: nobody answers OrderPlaced, so every saga waits on its stock step.
let system: System;
let transport: Transport;

beforeAll(async () => {
  system = await startSystem({
    without: ['inventory-service', 'payment-service'],
    env: { 'order-service': { SAGA_STEP_TIMEOUT_MS: '300', SAGA_SWEEP_INTERVAL_MS: '100', EVENT_MAX_ATTEMPTS: '3', EVENT_RETRY_BACKOFF_MS: '10' } },
  });
  transport = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: system.prefix }, createLogger({ name: 'test', level: 'silent' }));
}, 60_000);
afterAll(async () => {
  await transport.close();
  await system.stop();
});

/** Dead letters of order-service's group holding the event with this id. */
const deadLettersOf = async (eventId: string) => (await transport.listDeadLetters('order-service')).filter((l) => (l.envelope as { id?: string }).id === eventId);

describe('saga step timeout', () => {
  it('when inventory-service never answers, then the order ends CANCELLED with reason timeout and OrderCancelled is published for compensation', async () => {
    const customer = newCustomer();
    const productId = await system.stockedProduct({ available: null });

    const placed = await placeOrder(system.orders!.service.url, customer, { items: [{ productId, quantity: 1 }] });

    expect(placed.status).toBe(202);
    expect(await finalOrder(system.orders!.service.url, customer, placed.body.id)).toMatchObject({ status: 'CANCELLED', reason: 'timeout' });
    const cancelled = await rows<{ payload: { reason: string; items: unknown[] } }>(
      system.orders!.service.ctx.sequelize,
      "SELECT envelope->'payload' AS payload FROM outbox WHERE aggregate_id = $1 AND type = 'OrderCancelled'",
      [placed.body.id],
    );
    expect(cancelled).toEqual([{ payload: expect.objectContaining({ reason: 'timeout', items: [{ productId, quantity: 1 }] }) }]);
    expect((await request(system.orders!.service.url).get('/metrics')).text).toMatch(/saga_outcomes_total\{[^}]*outcome="timeout"[^}]*\} [1-9]/);
  });
});

describe('poison events', () => {
  it('when an event about an unknown order keeps failing, then it lands in dlq.order-service after EVENT_MAX_ATTEMPTS and a replay delivers it again', async () => {
    // Arrange
    const orderId = randomUUID();
    const poison = createEvent('PaymentCaptured', orderId, { paymentId: randomUUID(), orderId, amountCents: 100, currency: 'USD' });

    // Act
    await transport.publish('payments', [poison]);

    // Assert: dead-lettered after 3 attempts, with the reason
    const [letter] = await eventually(async () => {
      const letters = await deadLettersOf(poison.id);
      expect(letters).toHaveLength(1);
      return letters;
    });
    expect(letter).toMatchObject({ topic: `${system.prefix}payments`, attempts: 3 });
    expect(letter.reason).toMatch(/not found/);
    // a replay puts it back on its topic: handled again (still failing), it returns as a new dead letter
    expect(await transport.replayDeadLetter('order-service', letter.id)).toBe(true);
    await eventually(async () => {
      const letters = await deadLettersOf(poison.id);
      expect(letters).toHaveLength(1);
      expect(letters[0].id).not.toBe(letter.id);
      expect(letters[0].attempts).toBe(3);
    });
    expect(await rows(system.orders!.service.ctx.sequelize, 'SELECT 1 FROM inbox WHERE event_id = $1', [poison.id])).toEqual([]);
  });

  it('when a message on the stream is not a valid event envelope, then it is dead-lettered at once and the consumer carries on', async () => {
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await redis.xadd(streamKey(`${system.prefix}inventory`), '*', 'envelope', '{"type":"StockReserved","garbage":true}');
    } finally {
      redis.disconnect();
    }

    const letter = await eventually(async () => {
      const found = (await transport.listDeadLetters('order-service')).find((l) => (l.envelope as { garbage?: boolean }).garbage);
      expect(found).toBeDefined();
      return found!;
    });
    expect(letter).toMatchObject({ attempts: 0, reason: expect.stringMatching(/invalid envelope/) });
    // the consumer carries on: the next event on that stream is handled (here, dead-lettered after its attempts)
    const orderId = randomUUID();
    const next = createEvent('StockReserved', orderId, { orderId, items: [{ productId: randomUUID(), quantity: 1 }] });
    await transport.publish('inventory', [next]);
    await eventually(async () => expect((await deadLettersOf(next.id)).map((l) => l.attempts)).toEqual([3]));
  });
});
