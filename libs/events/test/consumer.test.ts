import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { type Db, type Sequelize, createSequelize, dbOf, migrate } from '@cloudretail/db';
import { TEST_REDIS_URL, createTestDatabase } from '@cloudretail/testing';
import { type ConsumerOptions, type EventEnvelope, type Transport, type TransportConfig, createEvent, createTransport, enqueue, inboxMigration, outboxMigrations, startConsumer, streamKey } from '../src';
import { devSigning, eventually, logger, stockEvent, uniqueName } from './support';

let database: Awaited<ReturnType<typeof createTestDatabase>>;
let sequelize: Sequelize;
let db: Db;
let redis: Redis;
const prefixes: string[] = [];
let transports: Transport[] = [];

beforeAll(async () => {
  database = await createTestDatabase('events');
  sequelize = createSequelize(database.url);
  db = dbOf(sequelize);
  await migrate(sequelize, [...outboxMigrations, inboxMigration], 'up');
  // The consumer's own state. `txid`: which transaction wrote the row, so a test sees what one batch committed.
  await db.execute('CREATE TABLE applied (seq bigserial, event_id uuid NOT NULL, aggregate_id uuid NOT NULL, available int NOT NULL, txid bigint NOT NULL DEFAULT txid_current())');
  redis = new Redis(TEST_REDIS_URL);
});
afterEach(async () => {
  await Promise.all(transports.map((t) => t.close()));
  transports = [];
});
afterAll(async () => {
  for (const prefix of prefixes) {
    const keys = [...(await redis.keys(`events:${prefix}*`)), ...(await redis.keys(`events:dlq.${prefix}*`))];
    if (keys.length) await redis.del(...keys);
  }
  redis.disconnect();
  await sequelize.close();
  await database.drop();
});

type Applied = { event_id: string; aggregate_id: string; available: number; txid: string };
const appliedOf = (ids: string[]) => db.query<Applied>('SELECT event_id, aggregate_id, available, txid::text FROM applied WHERE event_id = ANY($1) ORDER BY seq', [ids]);
const idsOf = (events: EventEnvelope[]) => events.map((e) => e.id);

/**
 * An inventory-like consumer of StockLevelSet on a topic namespace of its own (real Redis, dev
 * signing as in every process without keys). Its handler records each call (rolled back or not),
 * writes one row and enqueues one LowStock per event, and throws for the ids in `poison`.
 */
function inventory(env: Partial<TransportConfig> = {}) {
  const prefix = `${uniqueName('consumer')}.`;
  prefixes.push(prefix);
  const transport = (more: Partial<TransportConfig> = {}) => {
    const created = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefix, ...env, ...more }, logger);
    transports.push(created);
    return created;
  };
  const bus = transport();
  const group = uniqueName('inventory');
  const calls: string[] = [];
  const poison = new Map<string, () => Promise<Error | undefined>>();
  const start = (options: Partial<ConsumerOptions> = {}) =>
    startConsumer({
      transport: bus,
      db,
      group,
      maxAttempts: 3,
      retryBackoffMs: 10,
      handlers: {
        StockLevelSet: async (payload, tx, event) => {
          calls.push(event.id);
          const error = await poison.get(event.id)?.();
          if (error) throw error;
          await tx.execute('INSERT INTO applied (event_id, aggregate_id, available) VALUES ($1, $2, $3)', [event.id, event.aggregateId, payload.available]);
          enqueue(tx, [createEvent('LowStock', payload.productId, { productId: payload.productId, available: payload.available, threshold: 5 })]);
        },
      },
      ...options,
    });
  const stream = streamKey(`${prefix}inventory`);
  return {
    bus,
    transport,
    group,
    calls,
    poison,
    start,
    callsOf: (id: string) => calls.filter((c) => c === id).length,
    /** Writes a message straight to the stream, as a broken or hostile producer could. */
    xadd: (type: string, envelope: string) => redis.xadd(stream, '*', 'type', type, 'envelope', envelope),
    pending: async () => ((await redis.xpending(stream, `${prefix}${group}`)) as [number])[0],
    outboxRows: async (ids: string[]) => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM outbox WHERE type = 'LowStock' AND (envelope->>'aggregateId')::uuid = ANY($1)", [ids]))[0].n,
    inboxRows: (ids: string[]) => db.query<{ event_id: string; processed_at: Date }>('SELECT event_id, processed_at FROM inbox WHERE consumer_group = $1 AND event_id = ANY($2)', [group, ids]),
  };
}

describe('startConsumer over Redis Streams', () => {
  it('when a burst of events waits in the stream, then they are handled in ONE transaction: one inbox claim, prepare once, handlers in stream order, one outbox insert', async () => {
    // Arrange: ten events of three aggregates, published before the consumer exists
    const consumer = inventory();
    const aggregates = [randomUUID(), randomUUID(), randomUUID()];
    const events = Array.from({ length: 10 }, (_, i) => stockEvent(aggregates[i % 3], i));
    await consumer.bus.publish('inventory', events);
    const prepared: string[][] = [];

    // Act
    await consumer.start({ prepare: async (batch) => void prepared.push(idsOf(batch)) });

    // Assert
    const applied = await eventually(async () => {
      const rows = await appliedOf(idsOf(events));
      expect(rows).toHaveLength(10);
      return rows;
    });
    expect(applied.map((r) => r.event_id)).toEqual(idsOf(events)); // stream order
    expect(new Set(applied.map((r) => r.txid)).size).toBe(1); // one transaction
    expect(prepared).toEqual([idsOf(events)]);
    expect(consumer.calls).toEqual(idsOf(events));
    const inbox = await consumer.inboxRows(idsOf(events));
    expect(inbox).toHaveLength(10);
    expect(new Set(inbox.map((r) => r.processed_at.getTime())).size).toBe(1); // the transaction's now()
    expect(await consumer.outboxRows(aggregates)).toBe(10);
    await eventually(async () => expect(await consumer.pending()).toBe(0));
  });

  it('when one event of a batch is poison, then it alone is dead-lettered and every other event is applied exactly once', async () => {
    // Arrange: seven aggregates, the fourth event's handler always throws
    const consumer = inventory();
    const events = Array.from({ length: 7 }, (_, i) => stockEvent(undefined, i));
    const poison = events[3];
    consumer.poison.set(poison.id, async () => new Error('violates a check constraint'));
    await consumer.bus.publish('inventory', events);

    // Act
    await consumer.start();

    // Assert: the poison event in the DLQ after its attempts alone (maxAttempts 3)…
    const [letter] = await eventually(async () => {
      const letters = await consumer.bus.listDeadLetters(consumer.group);
      expect(letters).toHaveLength(1);
      return letters;
    });
    expect(letter).toMatchObject({ attempts: 3, envelope: { id: poison.id }, reason: expect.stringContaining('violates a check constraint') });
    expect(consumer.callsOf(poison.id)).toBe(1 + 3); // in the failed batch, then three attempts of its own
    // …and the others applied once each, although the failed batch had run some of their handlers already
    const healthy = events.filter((e) => e !== poison);
    await eventually(async () => expect((await appliedOf(idsOf(events))).map((r) => r.event_id).sort()).toEqual(idsOf(healthy).sort()));
    // (the batch ran its handlers up to the poison one; each event ran once more on its own)
    expect(healthy.map((e) => consumer.callsOf(e.id))).toEqual([2, 2, 2, 1, 1, 1]);
    expect(await consumer.outboxRows(healthy.map((e) => e.aggregateId))).toBe(6);
    expect(await consumer.outboxRows([poison.aggregateId])).toBe(0);
    expect((await consumer.inboxRows(idsOf(events))).map((r) => r.event_id).sort()).toEqual(idsOf(healthy).sort());
    await eventually(async () => expect(await consumer.pending()).toBe(0));
  });

  it('when a batch falls back to one event at a time, then each aggregate keeps its publish order, also for events read meanwhile, while other aggregates go on', async () => {
    // Arrange: aggregate A's third event blocks inside the first batch, then fails until "healed"
    const consumer = inventory();
    const [a, b] = [randomUUID(), randomUUID()];
    const first = Array.from({ length: 6 }, (_, i) => stockEvent(a, i + 1));
    const stuck = first[2];
    let releaseBatch!: () => void;
    const batchGate = new Promise<void>((resolve) => (releaseBatch = resolve));
    let healed = false;
    consumer.poison.set(stuck.id, async () => {
      if (consumer.callsOf(stuck.id) === 1) await batchGate;
      return healed ? undefined : new Error('lock timeout');
    });
    await consumer.bus.publish('inventory', first);
    await consumer.start({ maxAttempts: 1_000, retryBackoffMs: 20, maxRetryBackoffMs: 50 });
    await eventually(() => expect(consumer.calls).toContain(stuck.id));

    // Act: more of A, and B, arrive while the batch is in hand; then the batch fails
    const laterA = stockEvent(a, 7);
    const otherB = stockEvent(b, 1);
    await consumer.bus.publish('inventory', [laterA]);
    await consumer.bus.publish('inventory', [otherB]);
    await eventually(async () => expect(await consumer.pending()).toBe(8)); // all read by the consumer
    releaseBatch();

    // Assert: B is applied while A waits behind its failing event
    await eventually(async () => {
      expect(await appliedOf([otherB.id])).toHaveLength(1);
      expect((await appliedOf(idsOf([...first, laterA]))).map((r) => r.event_id)).toEqual(idsOf(first.slice(0, 2)));
    });

    // Act + Assert: once it succeeds, A follows in publish order, each event once
    healed = true;
    await eventually(async () => expect((await appliedOf(idsOf([...first, laterA]))).map((r) => r.available)).toEqual([1, 2, 3, 4, 5, 6, 7]));
    await eventually(async () => expect(await consumer.pending()).toBe(0));
    expect(await consumer.bus.listDeadLetters(consumer.group)).toEqual([]);
  });

  it('when an event is delivered twice (in one batch, and again later), then it is applied once', async () => {
    const consumer = inventory();
    const event = stockEvent();
    await consumer.bus.publish('inventory', [event, event]);
    await consumer.start();
    await eventually(async () => expect(await appliedOf([event.id])).toHaveLength(1));

    await consumer.bus.publish('inventory', [event]);
    const marker = stockEvent();
    await consumer.bus.publish('inventory', [marker]); // handled after the redelivery
    await eventually(async () => expect(await appliedOf([marker.id])).toHaveLength(1));

    expect(await appliedOf([event.id])).toHaveLength(1);
    expect(consumer.callsOf(event.id)).toBe(1); // the inbox skipped both copies before any handler
    expect(await consumer.inboxRows([event.id])).toHaveLength(1);
    await eventually(async () => expect(await consumer.pending()).toBe(0));
  });

  it('when a message of a type without a handler arrives, then it is acknowledged unread: not parsed, not dead-lettered, nothing left pending', async () => {
    const consumer = inventory();
    await consumer.start();
    const after = stockEvent();

    await consumer.xadd('StockReserved', 'not json at all {'); // would be dead-lettered if parsed
    await consumer.bus.publish('inventory', [createEvent('LowStock', randomUUID(), { productId: randomUUID(), available: 1, threshold: 5 }), after]);

    await eventually(async () => expect(await appliedOf([after.id])).toHaveLength(1));
    await eventually(async () => expect(await consumer.pending()).toBe(0));
    expect(await consumer.bus.listDeadLetters(consumer.group)).toEqual([]);
    expect(consumer.calls).toEqual([after.id]);
  });

  it('when unsigned or tampered events sit in a batch, then they are dead-lettered as unauthentic, never handled, and the rest of the batch still commits together', async () => {
    // Arrange: genuine, forged (unsigned), tampered (signed, then altered), genuine — before the consumer starts
    const consumer = inventory();
    const genuine = [stockEvent(), stockEvent(), stockEvent(), stockEvent()];
    const forged = stockEvent(undefined, 1_000);
    const signed = devSigning.sign(stockEvent(undefined, 2)) as ReturnType<typeof stockEvent>;
    const tampered = { ...signed, payload: { ...signed.payload, available: 2_000 } };
    await consumer.bus.publish('inventory', genuine.slice(0, 2));
    await consumer.xadd('StockLevelSet', JSON.stringify(forged));
    await consumer.xadd('StockLevelSet', JSON.stringify(tampered));
    await consumer.bus.publish('inventory', genuine.slice(2));

    // Act
    await consumer.start();

    // Assert
    const letters = await eventually(async () => {
      const found = await consumer.bus.listDeadLetters(consumer.group);
      expect(found).toHaveLength(2);
      return found;
    });
    expect(letters.map((l) => (l.envelope as { id: string }).id).sort()).toEqual([forged.id, tampered.id].sort());
    for (const letter of letters) expect(letter).toMatchObject({ attempts: 0, reason: expect.stringContaining('unauthentic event') });
    const applied = await eventually(async () => {
      const rows = await appliedOf(idsOf(genuine));
      expect(rows).toHaveLength(4);
      return rows;
    });
    expect(new Set(applied.map((r) => r.txid)).size).toBe(1);
    expect(consumer.calls).toEqual(idsOf(genuine));
    expect(await appliedOf([forged.id, tampered.id])).toEqual([]);
    await eventually(async () => expect(await consumer.pending()).toBe(0));
  });

  it('when a consumer stops mid-batch, then the batch in hand commits, what it had read but not handled stays pending, and a new consumer handles that exactly once', async () => {
    // Arrange: 60 events: a first read of 50 (one batch, held in its handler) and a second read of 10
    const consumer = inventory();
    const events = Array.from({ length: 60 }, (_, i) => stockEvent(undefined, i));
    await consumer.bus.publish('inventory', events);
    let releaseBatch!: () => void;
    const batchGate = new Promise<void>((resolve) => (releaseBatch = resolve));
    consumer.poison.set(events[0].id, async () => void (await batchGate));
    const first = await consumer.start({ consumerName: 'first' });
    await eventually(async () => expect(await consumer.pending()).toBe(60));
    await eventually(() => expect(consumer.calls).toEqual([events[0].id]));

    // Act: stop while the batch is in its handler
    const stopping = first.close();
    releaseBatch();
    await stopping;

    // Assert: the batch committed and was acknowledged, the rest is still pending
    const handled = (await appliedOf(idsOf(events))).map((r) => r.event_id);
    expect(handled.length).toBeGreaterThan(0);
    expect(handled.length).toBeLessThan(60);
    expect(await consumer.pending()).toBe(60 - handled.length);
    const callsBefore = consumer.calls.length;

    // Act: another consumer of the group takes over what was left pending (XAUTOCLAIM)
    await consumer.start({ transport: consumer.transport({ EVENT_CLAIM_IDLE_MS: 300 }), consumerName: 'second' });

    // Assert: every event applied exactly once, the new consumer handled only what was left
    await eventually(async () => expect((await appliedOf(idsOf(events))).map((r) => r.event_id).sort()).toEqual(idsOf(events).sort()));
    expect(consumer.calls.slice(callsBefore).sort()).toEqual(idsOf(events).filter((id) => !handled.includes(id)).sort());
    expect(await consumer.inboxRows(idsOf(events))).toHaveLength(60);
    await eventually(async () => expect(await consumer.pending()).toBe(0));
  });
});
