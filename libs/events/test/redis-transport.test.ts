import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { TEST_REDIS_URL } from '@cloudretail/testing';
import { type Transport, createRedisTransport, dlqTopic, streamKey } from '../src';
import { devSigning, eventually, logger, stockEvent, uniqueName } from './support';
import { transportContract } from './transport-contract';

let redis: Redis;
beforeAll(() => {
  redis = new Redis(TEST_REDIS_URL);
});
afterAll(async () => {
  await redis.quit();
});

const create = (options: { claimIdleMs?: number; maxLen?: number } = {}) => createRedisTransport({ url: TEST_REDIS_URL, logger, blockMs: 500, signing: devSigning, ...options });
const cleanup = async ({ topics, groups }: { topics: string[]; groups: string[] }) => {
  const keys = [...topics, ...groups.map(dlqTopic)].map(streamKey);
  if (keys.length) await redis.del(...keys);
};

describe('redis transport contract', () => {
  transportContract(() => ({
    create,
    publishRaw: async (topic, _key, value, type) => {
      await redis.xadd(streamKey(topic), '*', ...(type ? ['type', type] : []), 'envelope', value);
    },
    cleanup,
  }));
});

describe('redis transport (redis only)', () => {
  const transports: Transport[] = [];
  const names = { topics: [] as string[], groups: [] as string[] };
  afterAll(async () => {
    await Promise.all(transports.map((t) => t.close()));
    await cleanup(names);
  });
  const track = (transport: Transport) => (transports.push(transport), transport);
  const name = (kind: 'topics' | 'groups') => {
    const value = uniqueName(kind);
    names[kind].push(value);
    return value;
  };

  it('(redis only) when a consumer dies with a message pending, then another consumer of the group reclaims it after the idle time (XAUTOCLAIM)', async () => {
    // Arrange: "dead" takes the message and never acknowledges it
    const [topic, group] = [name('topics'), name('groups')];
    let deadCalls = 0;
    const dead = await track(create()).subscribe({
      group,
      topics: [topic],
      consumerName: 'dead',
      maxAttempts: 1_000,
      retryBackoffMs: 50,
      handle: async () => {
        deadCalls += 1;
        throw new Error('hangs');
      },
    });
    const event = stockEvent();
    await track(create()).publish(topic, [event]);
    await eventually(() => expect(deadCalls).toBeGreaterThan(0));
    await dead.stop();

    // Act: a live consumer with a short idle threshold
    const handled: string[] = [];
    await track(create({ claimIdleMs: 300 })).subscribe({ group, topics: [topic], consumerName: 'alive', handle: async (e) => void handled.push(e.id) });

    // Assert
    await eventually(() => expect(handled).toEqual([event.id]));
    await eventually(async () => expect(await redis.xpending(streamKey(topic), group)).toEqual([0, null, null, null]));
  });

  it('(redis only) when one aggregate is slow, then other aggregates of the batch go on while its own messages keep their order', async () => {
    const [topic, group] = [name('topics'), name('groups')];
    const transport = track(create());
    const [slow, fast] = [randomUUID(), randomUUID()];
    const events = [stockEvent(slow, 1), stockEvent(slow, 2), stockEvent(fast, 1), stockEvent(fast, 2), stockEvent(slow, 3)];
    await transport.publish(topic, events); // one batch: all five are read by one XREADGROUP
    const log: string[] = [];
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((resolve) => (releaseSlow = resolve));
    await transport.subscribe({
      group,
      topics: [topic],
      handle: async (event) => {
        const { available } = event.payload as { available: number };
        const who = event.aggregateId === slow ? 'slow' : 'fast';
        log.push(`${who}${available} start`);
        if (who === 'slow' && available === 1) await slowGate;
        log.push(`${who}${available} end`);
      },
    });
    try {
      // The fast aggregate finishes while the slow one's first message is still in hand…
      await eventually(() => expect(log).toEqual(['slow1 start', 'fast1 start', 'fast1 end', 'fast2 start', 'fast2 end']));
    } finally {
      releaseSlow();
    }
    // …and the slow aggregate's messages then run one after another, in stream order.
    await eventually(() => expect(log.filter((l) => l.startsWith('slow'))).toEqual(['slow1 start', 'slow1 end', 'slow2 start', 'slow2 end', 'slow3 start', 'slow3 end']));
    await eventually(async () => expect(await redis.xpending(streamKey(topic), group)).toEqual([0, null, null, null]));
  });

  it('(redis only) when topics are provisioned before any consumer exists, then a new group still reads what was published before it subscribed', async () => {
    const [topic, group] = [name('topics'), name('groups')];
    const bus = track(create());
    await bus.provision([topic]);
    const early = stockEvent();
    await bus.publish(topic, [early]);

    const handled: string[] = [];
    await bus.subscribe({ group, topics: [topic], handle: async (e) => void handled.push(e.id) });

    await eventually(() => expect(handled).toEqual([early.id]));
  });

  it('(redis only) when a stream outgrows maxLen, then it is trimmed to about that size', async () => {
    const topic = name('topics');
    const bus = track(create({ maxLen: 100 }));

    for (let i = 0; i < 10; i++) await bus.publish(topic, Array.from({ length: 100 }, () => stockEvent()));

    const length = await redis.xlen(streamKey(topic));
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThan(300); // "~" trims whole stream nodes, so a little over the cap
  });

  it('(redis only) when redis is unreachable, then check() and publish() reject instead of hanging', async () => {
    const bus = track(createRedisTransport({ url: 'redis://127.0.0.1:1', logger }));

    await expect(bus.check()).rejects.toThrow();
    await expect(bus.publish(name('topics'), [stockEvent()])).rejects.toThrow();
  });

  it('(redis only) when one aggregate keeps failing, then events of other aggregates published later are handled meanwhile, and stop() does not wait for its retry', async () => {
    // Arrange: a long retry window, so the poison event is still retrying when the others arrive
    const [topic, group] = [name('topics'), name('groups')];
    const bus = track(create());
    const [poison, later] = [stockEvent(), Array.from({ length: 3 }, () => stockEvent())];
    const handled: string[] = [];
    let poisonCalls = 0;
    const subscription = await bus.subscribe({
      group,
      topics: [topic],
      retryForMs: 600_000,
      retryBackoffMs: 100,
      maxRetryBackoffMs: 200,
      handle: async (event) => {
        if (event.id === poison.id) {
          poisonCalls += 1;
          throw new Error('database failing over');
        }
        handled.push(event.id);
      },
    });
    await bus.publish(topic, [poison]);
    await eventually(() => expect(poisonCalls).toBeGreaterThan(1));

    // Act: other aggregates' events, one per read
    for (const event of later) await bus.publish(topic, [event]);

    // Assert: handled while the poison one retries
    await eventually(() => expect(handled).toEqual(later.map((e) => e.id)));
    const started = Date.now();
    await subscription.stop();
    expect(Date.now() - started).toBeLessThan(1_000);
    const [count] = (await redis.xpending(streamKey(topic), group)) as [number];
    expect(count).toBe(1); // the poison event: unacknowledged, redelivered after a restart
    expect(await bus.listDeadLetters(group)).toEqual([]);
  });

  it('(redis only) when a message is retried for longer than the claim idle time, then another consumer of the group does not take it over', async () => {
    const [topic, group] = [name('topics'), name('groups')];
    const event = stockEvent();
    let failUntil = Infinity;
    const calls = { first: 0, second: 0 };
    const handler = (who: 'first' | 'second') => async () => {
      calls[who] += 1;
      if (Date.now() < failUntil) throw new Error('outage');
    };
    await track(create({ claimIdleMs: 300 })).subscribe({ group, topics: [topic], consumerName: 'first', retryBackoffMs: 50, maxRetryBackoffMs: 100, handle: handler('first') });
    await track(create()).publish(topic, [event]);
    await eventually(() => expect(calls.first).toBeGreaterThan(0));
    failUntil = Date.now() + 1_500;

    await track(create({ claimIdleMs: 300 })).subscribe({ group, topics: [topic], consumerName: 'second', handle: handler('second') });

    await eventually(async () => expect(await redis.xpending(streamKey(topic), group)).toEqual([0, null, null, null]));
    expect(calls.second).toBe(0);
  });

  it('(redis only) when one dead letter is replayed twice at once, then it is republished once', async () => {
    const [topic, group] = [name('topics'), name('groups')];
    const bus = track(create());
    let broken = true;
    const handled: string[] = [];
    await bus.subscribe({ group, topics: [topic], maxAttempts: 1, handle: async (e) => {
      if (broken) throw new Error('down');
      handled.push(e.id);
    } });
    const event = stockEvent();
    await bus.publish(topic, [event]);
    const [letter] = await eventually(async () => {
      const letters = await bus.listDeadLetters(group);
      expect(letters).toHaveLength(1);
      return letters;
    });
    broken = false;

    const results = await Promise.all([bus.replayDeadLetter(group, letter.id), track(create()).replayDeadLetter(group, letter.id)]);

    expect(results.sort()).toEqual([false, true]);
    await eventually(() => expect(handled).toEqual([event.id]));
    const entries = (await redis.xrange(streamKey(topic), '-', '+')).filter(([, fields]) => fields[fields.indexOf('envelope') + 1].includes(event.id));
    expect(entries).toHaveLength(2); // the original and one replay, not two
  });
});
