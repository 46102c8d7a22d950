import { randomUUID } from 'node:crypto';
import { type AddressInfo, type Socket, connect, createServer } from 'node:net';
import Redis from 'ioredis';
import { type Db, type Sequelize, type Tx, createSequelize, dbOf, migrate } from '@cloudretail/db';
import { TEST_REDIS_URL, createTestDatabase } from '@cloudretail/testing';
import { type EventEnvelope, type Transport, createRedisTransport, createTransport, enqueue, onOutboxCommit, outboxMigrations, startOutboxRelay, streamKey } from '../src';
import { eventually, logger, stockEvent, uniqueName } from './support';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sequelize: Sequelize;
let pg: Db;
let redis: Redis;
const topics: string[] = [];
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  db = await createTestDatabase('events');
  sequelize = createSequelize(db.url);
  pg = dbOf(sequelize);
  await migrate(sequelize, outboxMigrations, 'up');
  redis = new Redis(TEST_REDIS_URL);
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  if (topics.length) await redis.del(...topics.map(streamKey));
  await redis.quit();
  await sequelize.close();
  await db.drop();
});

const newTopic = () => {
  const topic = uniqueName('outbox');
  topics.push(topic);
  return topic;
};
const redisTransport = (url = TEST_REDIS_URL) => {
  const transport = createRedisTransport({ url, logger });
  cleanups.push(() => transport.close());
  return transport;
};
const relay = (options: { transport: Transport; db?: Db; batchSize?: number; pollMs?: number; retentionHours?: number; sweepIntervalMs?: number }) => {
  const started = startOutboxRelay({ db: pg, logger, pollMs: 20, maxBackoffMs: 200, ...options });
  cleanups.push(() => started.stop());
  return started;
};

/** Outbox rows as `enqueue` writes them, but on a test topic of our own. */
async function insertOutbox(rows: { topic: string; event: EventEnvelope }[]) {
  await pg.transaction(async (tx) => {
    for (const { topic, event } of rows) {
      await tx.execute('INSERT INTO outbox (id, topic, type, aggregate_id, envelope) VALUES ($1, $2, $3, $4, $5)', [event.id, topic, event.type, event.aggregateId, JSON.stringify(event)]);
    }
  });
}
const outboxRows = (ids: string[]) =>
  pg.query<{ id: string; published_at: Date | null; attempts: number; last_error: string | null }>('SELECT id, published_at, attempts, last_error FROM outbox WHERE id = ANY($1) ORDER BY seq', [ids]);
const streamIds = async (topic: string) => (await redis.xrange(streamKey(topic), '-', '+')).map(([, fields]) => (JSON.parse(fields[fields.indexOf('envelope') + 1]) as EventEnvelope).id);
const allPublished = async (ids: string[]) => expect((await outboxRows(ids)).filter((r) => !r.published_at)).toEqual([]);

/** A TCP proxy to the test Redis, opened on `port` only when the test "restores" the broker. */
async function openRedisProxy(port: number) {
  const target = new URL(TEST_REDIS_URL);
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port || 6379), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((listening) => server.listen(port, '127.0.0.1', listening));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((closed) => server.close(closed));
  });
}
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((listening) => server.once('listening', listening));
  const { port } = server.address() as AddressInfo;
  await new Promise((closed) => server.close(closed));
  return port;
}

describe('outbox relay', () => {
  it('when a transaction with outbox rows commits, then the relay publishes at once instead of waiting for its next poll', async () => {
    // The relay's transport namespaces the topic, so enqueue's real topic ('inventory') is ours alone.
    const prefix = `${uniqueName('wake')}.`;
    const transport = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefix }, logger);
    cleanups.push(() => transport.close());
    topics.push(`${prefix}inventory`);
    relay({ transport, pollMs: 60_000 });
    await new Promise((r) => setTimeout(r, 300)); // the first (empty) round has run: the next poll is a minute away
    const event = stockEvent();
    await pg.transaction(async (tx) => enqueue(tx, [event]));
    await eventually(async () => expect(await streamIds(`${prefix}inventory`)).toEqual([event.id]), { timeoutMs: 5_000 });
  });

  it('when a transaction enqueues several times, then its events are written by one INSERT just before the commit, and the relays are woken once, after it', async () => {
    let wakes = 0;
    const unsubscribe = onOutboxCommit(() => (wakes += 1));
    cleanups.push(async () => unsubscribe());
    const outboxCount = (tx: Tx | Db, ids: string[]) => tx.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE id = ANY($1)', [ids]).then(([r]) => r.n);
    /** The transaction as enqueue sees it, counting the statements it sends. */
    const counting = (tx: Tx) => {
      const counted = { statements: 0, tx: { ...tx, execute: (sql: string, params?: unknown[]) => ((counted.statements += 1), tx.execute(sql, params)) } };
      return counted;
    };

    // Arrange + Act: three enqueue calls (one empty) in a transaction that rolls back
    const rolledBack = [stockEvent(), stockEvent()];
    await expect(
      pg.transaction(async (tx) => {
        enqueue(tx, rolledBack.slice(0, 1));
        enqueue(tx, rolledBack.slice(1));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');

    // Assert: nothing written, nobody woken
    expect(wakes).toBe(0);
    expect(await outboxRows(rolledBack.map((e) => e.id))).toEqual([]);

    // Act: the same in a transaction that commits
    const committed = [stockEvent(), stockEvent(), stockEvent()];
    const ids = committed.map((e) => e.id);
    const statements = await pg.transaction(async (tx) => {
      const counted = counting(tx);
      enqueue(counted.tx, committed.slice(0, 1));
      enqueue(counted.tx, []);
      enqueue(counted.tx, committed.slice(1));
      expect(await outboxCount(tx, ids)).toBe(0); // buffered: not even this transaction sees a row yet
      return counted;
    });

    // Assert: one statement wrote all three rows, in enqueue order, after which the relays were woken once
    expect(statements.statements).toBe(1);
    expect(wakes).toBe(1);
    const rows = await pg.query<{ id: string; topic: string; type: string; aggregate_id: string; envelope: EventEnvelope }>(
      'SELECT id, topic, type, aggregate_id, envelope FROM outbox WHERE id = ANY($1) ORDER BY seq',
      [ids],
    );
    expect(rows).toEqual(committed.map((e) => ({ id: e.id, topic: 'inventory', type: 'StockLevelSet', aggregate_id: e.aggregateId, envelope: e })));
    await pg.execute('UPDATE outbox SET published_at = now() WHERE topic = $1', ['inventory']); // keep other tests' relays off the real topic
  });

  it('when rows are pending, then the relay publishes each topic in seq order and marks the rows published', async () => {
    // Arrange: two aggregates spread over two topics, interleaved
    const [orders, payments] = [newTopic(), newTopic()];
    const [a, b] = [randomUUID(), randomUUID()];
    const rows = Array.from({ length: 12 }, (_, i) => ({ topic: i % 3 === 0 ? payments : orders, event: stockEvent(i % 2 ? a : b, i) }));
    await insertOutbox(rows);
    const ids = rows.map((r) => r.event.id);

    // Act
    relay({ transport: redisTransport() });

    // Assert
    await eventually(() => allPublished(ids));
    expect(await streamIds(orders)).toEqual(rows.filter((r) => r.topic === orders).map((r) => r.event.id));
    expect(await streamIds(payments)).toEqual(rows.filter((r) => r.topic === payments).map((r) => r.event.id));
    expect((await outboxRows(ids)).every((r) => r.attempts === 0 && r.last_error === null)).toBe(true);
  });

  it('when the broker is unreachable, then rows stay pending with attempts and last_error, and once it is back every row is delivered exactly once in order', async () => {
    // Arrange: a transport pointing at a closed port
    const port = await freePort();
    const topic = newTopic();
    const rows = Array.from({ length: 5 }, () => ({ topic, event: stockEvent() }));
    const ids = rows.map((r) => r.event.id);
    await insertOutbox(rows);

    // Act
    relay({ transport: redisTransport(`redis://127.0.0.1:${port}`) });

    // Assert: nothing lost, the failure is recorded
    await eventually(async () => {
      const state = await outboxRows(ids);
      expect(state.every((r) => r.published_at === null)).toBe(true);
      expect(state[0].attempts).toBeGreaterThanOrEqual(2);
      expect(state[0].last_error).toBeTruthy();
    });

    // Act: the broker comes back on the same address
    await openRedisProxy(port);

    // Assert: delivery resumes by itself
    await eventually(() => allPublished(ids));
    expect(await streamIds(topic)).toEqual(ids);
  });

  it('when a publish fails mid-round, then the round stops there and later rows wait for the failed one', async () => {
    // Arrange: a relay driven by hand, and a transport that refuses one topic
    const [first, second] = [newTopic(), newTopic()];
    const real = redisTransport();
    let secondDown = true;
    const flaky: Transport = { ...real, publish: (topic, events) => (topic === second && secondDown ? Promise.reject(new Error('broker busy')) : real.publish(topic, events)) };
    const manual = relay({ transport: flaky });
    await manual.stop();
    const aggregate = randomUUID();
    const rows = [first, second, first].map((topic, i) => ({ topic, event: stockEvent(aggregate, i) }));
    await insertOutbox(rows);

    // Act
    const failedRound = await manual.runOnce();

    // Assert: the first row went out, the failed row and the one after it did not
    expect(failedRound).toMatchObject({ published: 1, failed: true });
    expect(await streamIds(first)).toEqual([rows[0].event.id]);
    const state = await outboxRows(rows.map((r) => r.event.id));
    expect(state.map((r) => r.published_at !== null)).toEqual([true, false, false]);
    expect(state[1]).toMatchObject({ attempts: 1, last_error: 'broker busy' });

    // Act + Assert: once the broker accepts again the rest follows in order
    secondDown = false;
    expect(await manual.runOnce()).toMatchObject({ published: 2, failed: false });
    expect(await streamIds(first)).toEqual([rows[0].event.id, rows[2].event.id]);
    expect(await streamIds(second)).toEqual([rows[1].event.id]);
  });

  it('when two relays run in parallel, then no row is published twice and each aggregate keeps its order', async () => {
    // Arrange: two "replicas", each with its own pool and broker connection
    const topic = newTopic();
    const aggregates = Array.from({ length: 10 }, () => randomUUID());
    const rows = Array.from({ length: 200 }, (_, i) => ({ topic, event: stockEvent(aggregates[i % 10], i) }));
    await insertOutbox(rows);
    const replica = createSequelize(db.url);
    cleanups.push(() => replica.close());

    const counted = (transport: Transport) => {
      const replica = { transport: { ...transport, publish: (t: string, events: EventEnvelope[]) => transport.publish(t, events).then(() => void (replica.published += events.length)) }, published: 0 };
      return replica;
    };
    const [one, two] = [counted(redisTransport()), counted(redisTransport())];

    // Act
    relay({ transport: one.transport, batchSize: 7 });
    relay({ transport: two.transport, batchSize: 7, db: dbOf(replica) });

    // Assert
    const ids = rows.map((r) => r.event.id);
    await eventually(() => allPublished(ids));
    const published = await streamIds(topic);
    expect(published).toHaveLength(200);
    expect(new Set(published).size).toBe(200);
    expect(one.published + two.published).toBe(200);
    expect(one.published).toBeGreaterThan(0); // both replicas really took part
    expect(two.published).toBeGreaterThan(0);
    const position = new Map(published.map((id, index) => [id, index]));
    for (const aggregate of aggregates) {
      const order = rows.filter((r) => r.event.aggregateId === aggregate).map((r) => position.get(r.event.id)!);
      expect(order).toEqual([...order].sort((x, y) => x - y));
    }
  });
});

describe('outbox retention', () => {
  it('when published rows are older than the retention, then the periodic sweep deletes them and keeps recent and pending rows', async () => {
    // Arrange: published 25 h ago, published 1 h ago, and pending since 30 h (never deleted: not yet sent)
    const topic = newTopic();
    const [old, recent, pending] = [stockEvent(), stockEvent(), stockEvent()];
    await insertOutbox([old, recent, pending].map((event) => ({ topic, event })));
    await pg.execute(
      `UPDATE outbox SET created_at = now() - interval '30 hours',
         published_at = CASE id WHEN $1::uuid THEN now() - interval '25 hours' WHEN $2::uuid THEN now() - interval '1 hour' END
       WHERE id = ANY($3)`,
      [old.id, recent.id, [old.id, recent.id, pending.id]],
    );
    // a broker that refuses everything, so the relay leaves the pending row pending
    const refusing = { ...redisTransport(), publish: async () => Promise.reject(new Error('broker down')) } as Transport;

    // Act
    relay({ transport: refusing, retentionHours: 24, sweepIntervalMs: 50 });

    // Assert
    await eventually(async () => expect((await outboxRows([old.id, recent.id, pending.id])).map((r) => r.id)).toEqual([recent.id, pending.id]));
  });
});
