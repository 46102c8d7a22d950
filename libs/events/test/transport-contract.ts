import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EventEnvelope, Subscription, Transport } from '../src';
import { createEvent } from '../src';
import { devSigning, eventually, stockEvent, uniqueName } from './support';

/** What the contract needs from one adapter's test setup. */
export interface TransportHarness {
  /** A new transport instance (a new "process"); the suite closes it. */
  create(): Transport;
  /** Writes bytes to a topic the way a broken producer would, bypassing the envelope; `type` as publish labels it. */
  publishRaw(topic: string, key: string, value: string, type?: string): Promise<void>;
  /** Deletes what the test created (Redis streams); Kafka topics vanish with the mock cluster. */
  cleanup(names: { topics: string[]; groups: string[] }): Promise<void>;
}

/**
 * The behaviour every transport must have, run against each adapter from its own test file.
 * `harness` is a getter because adapters set up their broker in `beforeAll`.
 */
export function transportContract(harness: () => TransportHarness) {
  let transports: Transport[] = [];
  let names: { topics: string[]; groups: string[] };

  const transport = () => {
    const created = harness().create();
    transports.push(created);
    return created;
  };
  const topic = () => {
    const name = uniqueName('topic');
    names.topics.push(name);
    return name;
  };
  const group = () => {
    const name = uniqueName('group');
    names.groups.push(name);
    return name;
  };
  /** A handler that records what it received (and can be told to fail). */
  const recorder = (options: { failWith?: () => Error | undefined; delayMs?: number } = {}) => {
    const received: EventEnvelope[] = [];
    let calls = 0;
    const handle = async (event: EventEnvelope) => {
      calls += 1;
      if (options.delayMs) await sleep(options.delayMs);
      const error = options.failWith?.();
      if (error) throw error;
      received.push(event);
    };
    return { handle, received, calls: () => calls, ids: () => received.map((e) => e.id) };
  };

  beforeEach(() => {
    transports = [];
    names = { topics: [], groups: [] };
  });
  afterEach(async () => {
    await Promise.all(transports.map((t) => t.close()));
    await harness().cleanup(names);
  });

  it('when an event is published, then a subscriber receives the same envelope with its validated payload', async () => {
    // Arrange
    const bus = transport();
    const [t, g] = [topic(), group()];
    const consumer = recorder();
    await bus.subscribe({ group: g, topics: [t], handle: consumer.handle });
    const event = stockEvent(undefined, 7);

    // Act
    await bus.publish(t, [event]);

    // Assert
    await eventually(() => expect(consumer.received).toEqual([{ ...event, producer: 'inventory-service', signature: expect.any(String) }]));
    expect(consumer.received[0].payload).toEqual({ productId: event.aggregateId, available: 7 });
  });

  it('when events of one aggregate are published, then they are handled in publish order', async () => {
    const bus = transport();
    const [t, g] = [topic(), group()];
    const consumer = recorder();
    await bus.subscribe({ group: g, topics: [t], handle: consumer.handle });
    const [a, b] = [randomUUID(), randomUUID()];
    const events = Array.from({ length: 20 }, (_, i) => stockEvent(i % 3 === 0 ? b : a, i));

    await bus.publish(t, events.slice(0, 10)); // one batch…
    for (const event of events.slice(10)) await bus.publish(t, [event]); // …then one by one

    await eventually(() => expect(consumer.received).toHaveLength(20));
    const order = (aggregate: string) => consumer.received.filter((e) => e.aggregateId === aggregate).map((e) => e.id);
    expect(order(a)).toEqual(events.filter((e) => e.aggregateId === a).map((e) => e.id));
    expect(order(b)).toEqual(events.filter((e) => e.aggregateId === b).map((e) => e.id));
  });

  it('when two consumers share a group, then they split the work and each message is handled once', async () => {
    const [t, g] = [topic(), group()];
    const first = recorder({ delayMs: 20 });
    const second = recorder({ delayMs: 20 });
    await transport().subscribe({ group: g, topics: [t], consumerName: 'first', handle: first.handle });
    await transport().subscribe({ group: g, topics: [t], consumerName: 'second', handle: second.handle });
    const events = Array.from({ length: 20 }, () => stockEvent());

    const producer = transport();
    for (const event of events) await producer.publish(t, [event]); // a stream of messages, not one burst

    await eventually(() => expect([...first.ids(), ...second.ids()].sort()).toEqual(events.map((e) => e.id).sort()));
    await sleep(300); // a duplicate would arrive now
    expect(first.received.length + second.received.length).toBe(20);
    expect(first.received.length).toBeGreaterThan(0);
    expect(second.received.length).toBeGreaterThan(0);
  });

  it('when two groups subscribe to a topic, then each group gets every message', async () => {
    const t = topic();
    const billing = recorder();
    const shipping = recorder();
    const bus = transport();
    await Promise.all([billing, shipping].map((consumer) => bus.subscribe({ group: group(), topics: [t], handle: consumer.handle })));
    const events = Array.from({ length: 5 }, () => stockEvent());

    await bus.publish(t, events);

    const ids = events.map((e) => e.id).sort(); // five aggregates: no order between them
    await eventually(() => {
      expect(billing.ids().sort()).toEqual(ids);
      expect(shipping.ids().sort()).toEqual(ids);
    });
  });

  it('when a consumer stops before acknowledging a message, then the message is redelivered after it restarts', async () => {
    const [t, g] = [topic(), group()];
    const failing = recorder({ failWith: () => new Error('database unavailable') });
    const before: Subscription = await transport().subscribe({ group: g, topics: [t], consumerName: 'worker-1', handle: failing.handle, maxAttempts: 1_000, retryBackoffMs: 50 });
    const event = stockEvent();
    await transport().publish(t, [event]);
    await eventually(() => expect(failing.calls()).toBeGreaterThan(0));

    await before.stop(); // mid-retry: never acknowledged
    const after = recorder();
    await transport().subscribe({ group: g, topics: [t], consumerName: 'worker-1', handle: after.handle });

    await eventually(() => expect(after.ids()).toEqual([event.id]));
  });

  it('when a handler keeps failing, then after maxAttempts the message goes to dlq.<group> with the reason, and a replay is handled', async () => {
    // Arrange
    const bus = transport();
    const [t, g] = [topic(), group()];
    let broken = true;
    const consumer = recorder({ failWith: () => (broken ? new Error('price service down') : undefined) });
    await bus.subscribe({ group: g, topics: [t], handle: consumer.handle, maxAttempts: 3, retryBackoffMs: 10 });
    const poison = stockEvent();
    const healthy = stockEvent();

    // Act
    await bus.publish(t, [poison]);

    // Assert: three attempts, then a dead letter carrying everything an admin needs
    await eventually(() => expect(consumer.calls()).toBe(3));
    const [letter] = await eventually(async () => {
      const letters = await bus.listDeadLetters(g);
      expect(letters).toHaveLength(1);
      return letters;
    });
    expect(consumer.calls()).toBe(3);
    expect(letter).toMatchObject({ group: g, topic: t, attempts: 3, envelope: { ...poison, producer: 'inventory-service' } });
    expect(letter.reason).toContain('price service down');
    // the original was acknowledged: the consumer moved on to the next message
    broken = false;
    await bus.publish(t, [healthy]);
    await eventually(() => expect(consumer.ids()).toEqual([healthy.id]));

    // Act: the admin replays it once the cause is fixed
    expect(await bus.replayDeadLetter(g, letter.id)).toBe(true);

    // Assert
    await eventually(() => expect(consumer.ids()).toEqual([healthy.id, poison.id]));
    expect(await bus.listDeadLetters(g)).toEqual([]);
    expect(await bus.replayDeadLetter(g, letter.id)).toBe(false);
  });

  it('when a group has never dead-lettered anything, then its DLQ lists empty and a replay finds nothing', async () => {
    const bus = transport();
    const g = group();

    expect(await bus.listDeadLetters(g)).toEqual([]);
    expect(await bus.replayDeadLetter(g, '1-0')).toBe(false);
  });

  it('when a message is garbage or its payload breaks the catalog schema, then it goes to the DLQ at once and the handler never sees it', async () => {
    const bus = transport();
    const [t, g] = [topic(), group()];
    const consumer = recorder();
    await bus.subscribe({ group: g, topics: [t], handle: consumer.handle, maxAttempts: 5 });
    const badPayload = { ...stockEvent(), payload: { productId: 'not-a-uuid', available: -1 } };
    const valid = stockEvent();

    await harness().publishRaw(t, 'some-key', 'this is not json {');
    await bus.publish(t, [badPayload]);
    await bus.publish(t, [valid]);

    await eventually(() => expect(consumer.ids()).toEqual([valid.id])); // handled after the two bad ones
    const letters = await eventually(async () => {
      const found = await bus.listDeadLetters(g);
      expect(found).toHaveLength(2);
      return found;
    });
    const garbage = letters.find((l) => l.envelope === 'this is not json {');
    const invalid = letters.find((l) => (l.envelope as { id?: string }).id === badPayload.id);
    expect(garbage).toMatchObject({ topic: t, attempts: 0, reason: expect.stringContaining('invalid envelope') });
    expect(invalid).toMatchObject({ topic: t, attempts: 0, reason: expect.stringContaining('productId') });
    expect(consumer.calls()).toBe(1);
  });

  it('when an unsigned or tampered event is written straight to the topic (as anyone with broker access could), then it is dead-lettered as unauthentic and never handled', async () => {
    // Arrange
    const bus = transport();
    const [t, g] = [topic(), group()];
    const consumer = recorder();
    await bus.subscribe({ group: g, topics: [t], handle: consumer.handle });
    const forged = createEvent('PaymentCaptured', randomUUID(), { paymentId: randomUUID(), orderId: randomUUID(), amountCents: 0, currency: 'USD' });
    const genuine = createEvent('PaymentCaptured', randomUUID(), { paymentId: randomUUID(), orderId: randomUUID(), amountCents: 4200, currency: 'USD' });
    const tampered = { ...devSigning.sign(genuine), id: randomUUID(), payload: { ...genuine.payload, amountCents: 1 } };

    // Act
    await harness().publishRaw(t, forged.aggregateId, JSON.stringify(forged));
    await harness().publishRaw(t, tampered.aggregateId, JSON.stringify(tampered));
    await bus.publish(t, [genuine]); // signed by the transport

    // Assert
    await eventually(() => expect(consumer.ids()).toEqual([genuine.id]));
    const letters = await eventually(async () => {
      const found = await bus.listDeadLetters(g);
      expect(found).toHaveLength(2);
      return found;
    });
    expect(letters.map((l) => (l.envelope as { id: string }).id).sort()).toEqual([forged.id, tampered.id].sort());
    for (const letter of letters) expect(letter).toMatchObject({ attempts: 0, reason: expect.stringContaining('unauthentic event') });
    expect(consumer.calls()).toBe(1);
  });

  it('when a subscriber handles batches of its types, then a run is handed over at once in order, another type is skipped unread, and a failed run falls back message by message', async () => {
    // Arrange: one aggregate (one partition), its third event poison, and a message of a type not subscribed to
    const bus = transport();
    const [t, g] = [topic(), group()];
    const aggregate = randomUUID();
    const events = Array.from({ length: 5 }, (_, i) => stockEvent(aggregate, i));
    const poison = events[2];
    const batches: string[][] = [];
    const handled: string[] = [];
    const refuse = (event: EventEnvelope) => {
      if (event.id === poison.id) throw new Error('poison');
    };

    // Act
    await bus.subscribe({
      group: g,
      topics: [t],
      types: ['StockLevelSet'],
      maxAttempts: 2,
      retryBackoffMs: 10,
      handleBatch: async (batch) => {
        batches.push(batch.map((e) => e.id));
        batch.forEach(refuse); // all or nothing, as one transaction
        handled.push(...batch.map((e) => e.id));
      },
      handle: async (event) => {
        refuse(event);
        handled.push(event.id);
      },
    });
    await harness().publishRaw(t, aggregate, 'not json, and of another type {', 'LowStock');
    await bus.publish(t, events);

    // Assert: the run went to handleBatch whole, then each event alone, in order; only the poison is dead-lettered
    await eventually(() => expect(handled).toEqual(events.filter((e) => e !== poison).map((e) => e.id)));
    expect(batches[0]).toEqual(events.map((e) => e.id));
    const [letter] = await eventually(async () => {
      const letters = await bus.listDeadLetters(g);
      expect(letters).toHaveLength(1);
      return letters;
    });
    expect(letter).toMatchObject({ attempts: 2, envelope: { id: poison.id } });
  });

  it('when a handler fails for a while (a short outage) and then recovers, then the message is handled and not dead-lettered; failing past retryForMs dead-letters it', async () => {
    const bus = transport();
    const [t, g] = [topic(), group()];
    const [brief, endless] = [stockEvent(), stockEvent()];
    let failingSince: number | undefined; // the outage lasts one second from the first delivery (Kafka joins take seconds)
    const consumer = recorder({ failWith: () => (Date.now() - (failingSince ??= Date.now()) < 1_000 ? new Error('postgres failing over') : undefined) });
    const failing = recorder({ failWith: () => new Error('gone for good') });
    await bus.subscribe({ group: g, topics: [t], handle: (e) => (e.id === endless.id ? failing.handle(e) : consumer.handle(e)), retryForMs: 3_000, retryBackoffMs: 50, maxRetryBackoffMs: 200 });

    await bus.publish(t, [brief, endless]);

    await eventually(() => expect(consumer.ids()).toEqual([brief.id]));
    expect(consumer.calls()).toBeGreaterThan(2);
    const [letter] = await eventually(async () => {
      const letters = await bus.listDeadLetters(g);
      expect(letters).toHaveLength(1);
      return letters;
    });
    expect(letter).toMatchObject({ envelope: { id: endless.id }, reason: expect.stringContaining('gone for good') });
    expect(letter.attempts).toBeGreaterThan(3);
  });
}
