import { randomUUID } from 'node:crypto';
import { type Admin, type ITopicConfig, Kafka, type LogEntry, Partitioners, type Producer, logLevel } from 'kafkajs';
import type { Logger } from '@cloudretail/logging';
import type { EventEnvelope } from './envelope';
import type { EventSigning } from './signing';
import { jitteredBackoff } from './backoff';
import { type DeadLetterRecord, type DeliverOptions, admit, definedOnly, type SubscribeOptions, type Subscription, type Transport, aggregateIdOf, deliver, dlqTopic, toDeadLetter } from './transport';

export interface KafkaTransportOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** Idempotent producer (no duplicates from producer retries). Off only for brokers that lack it (the test mock cluster). */
  idempotent?: boolean;
  /** Create topics with the admin API before use. Off where the broker auto-creates them (the test mock cluster). */
  createTopics?: boolean;
  /** Consumer session timeout: how soon a dead consumer's partitions move to another. */
  sessionTimeoutMs?: number;
  /** Partitions a consumer handles at once; each partition stays one message at a time, in order. */
  concurrency?: number;
  /** Retry policy defaults of every subscription (each may override them). */
  maxAttempts?: number;
  retryForMs?: number;
  retryBackoffMs?: number;
  maxRetryBackoffMs?: number;
  /** Signs what is published and verifies what is consumed (see signing.ts); absent: neither. */
  signing?: EventSigning;
  onRejected?: DeliverOptions['onRejected'];
}

/** kafkajs logs through the service logger, so its lines are JSON like every other. */
const pinoLogCreator = (logger: Logger) => () => ({ namespace, level, log }: LogEntry) => {
  const { message, timestamp: _timestamp, logger: _logger, ...extra } = log; // pino adds its own time
  const method = level === logLevel.ERROR ? 'error' : level === logLevel.WARN ? 'warn' : level === logLevel.INFO ? 'info' : 'debug';
  logger[method]({ kafkajs: namespace, ...extra }, message);
};

/** Connects on first use and again after a failed attempt. */
function lazy(connect: () => Promise<void>) {
  let connecting: Promise<void> | undefined;
  return {
    ready: () => (connecting ??= connect().catch((error) => ((connecting = undefined), Promise.reject(error)))),
    reset: () => (connecting = undefined),
  };
}

/**
 * Kafka transport: one topic per domain, message key = aggregateId (so one aggregate stays on
 * one partition and in order), one consumer group per subscriber group, offsets committed only
 * after the handler (or the dead-letter write) succeeded.
 */
export function createKafkaTransport({
  brokers,
  clientId,
  logger,
  idempotent = true,
  createTopics = true,
  sessionTimeoutMs = 10_000,
  concurrency = 8,
  maxAttempts,
  retryForMs,
  retryBackoffMs,
  maxRetryBackoffMs,
  signing,
  onRejected,
}: KafkaTransportOptions): Transport {
  const kafka = new Kafka({ clientId, brokers, logLevel: logLevel.WARN, logCreator: pinoLogCreator(logger), retry: { retries: 5 } });
  const producer: Producer = kafka.producer({
    idempotent,
    ...(idempotent ? { maxInFlightRequests: 1 } : {}),
    createPartitioner: Partitioners.DefaultPartitioner,
    retry: { retries: 5 }, // bounded, so a publish to a dead cluster fails and the outbox relay retries later
  });
  const admin: Admin = kafka.admin();
  const producerConnection = lazy(() => producer.connect());
  const adminConnection = lazy(() => admin.connect());
  producer.on(producer.events.DISCONNECT, producerConnection.reset);
  admin.on(admin.events.DISCONNECT, adminConnection.reset);
  const subscriptions = new Set<Subscription>();

  async function ensureTopics(topics: ITopicConfig[]) {
    await adminConnection.ready();
    await admin.createTopics({ topics, waitForLeaders: true }); // resolves false when they already exist
  }

  async function send(topic: string, messages: { key: string | null; value: string | null; headers?: Record<string, string> }[]) {
    await producerConnection.ready();
    await producer.send({ topic, acks: -1, messages });
  }

  const sendDeadLetter = (group: string, record: DeadLetterRecord) => send(dlqTopic(group), [{ key: randomUUID(), value: JSON.stringify(record) }]);

  const defaults = definedOnly({ maxAttempts, retryForMs, retryBackoffMs, maxRetryBackoffMs });

  async function subscribe({ group, topics, handle, types, handleBatch, consumerName: _consumerName, ...options }: SubscribeOptions): Promise<Subscription> {
    const wanted = types && new Set(types);
    const policy = { ...defaults, ...definedOnly(options) };
    // The DLQ is compacted: a replay writes a tombstone for the dead letter's key.
    if (createTopics) await ensureTopics([...topics.map((topic) => ({ topic })), { topic: dlqTopic(group), configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }]);
    // Joining can fail while another member of the group is joining too (a SyncGroup error from
    // the rebalance); a fresh consumer a moment later joins cleanly.
    for (let attempt = 1; ; attempt++) {
      try {
        return await join();
      } catch (error) {
        if (attempt >= 3) throw error;
        logger.warn({ err: error, group, attempt }, 'kafka consumer could not join its group; retrying');
        await new Promise((resolve) => setTimeout(resolve, jitteredBackoff(attempt, 500, 4_000)));
      }
    }

    async function join(): Promise<Subscription> {
      const consumer = kafka.consumer({ groupId: group, sessionTimeout: sessionTimeoutMs, heartbeatInterval: Math.floor(sessionTimeoutMs / 5), maxWaitTimeInMs: 1_000 });
      const controller = new AbortController();
      const { signal } = controller;
      const joined = new Promise<void>((resolve, reject) => {
        consumer.on(consumer.events.GROUP_JOIN, () => resolve());
        consumer.on(consumer.events.CRASH, (event) => {
          logger.error({ err: event.payload.error, group, restart: event.payload.restart }, 'kafka consumer crashed');
          reject(event.payload.error);
        });
      });
      joined.catch(() => undefined); // awaited below; a crash before that point is not "unhandled"
      try {
        await consumer.connect();
        await consumer.subscribe({ topics, fromBeginning: true }); // a new group reads what was published before it existed
        const commit = (topic: string, partition: number, offset: string) => consumer.commitOffsets([{ topic, partition, offset: (BigInt(offset) + 1n).toString() }]);
        const skipped = (type: string | undefined) => wanted !== undefined && type !== undefined && !wanted.has(type);
        /** One message under the retry policy; true when it may be committed. */
        const deliverOne = async (topic: string, raw: string, heartbeat: () => Promise<void>) => {
          // Retries may last minutes: keep heartbeating so the group does not evict this consumer
          // (kafkajs heartbeats only between messages otherwise). The partition waits meanwhile.
          const beat = setInterval(() => void heartbeat().catch(() => undefined), Math.floor(sessionTimeoutMs / 5));
          return deliver({ raw, topic, handle, ...policy, signal, logger, signing, onRejected, deadLetter: (record) => sendDeadLetter(group, record) }).finally(() => clearInterval(beat));
        };
        await consumer.run({
          autoCommit: false,
          // One partition's messages in order; partitions in parallel.
          partitionsConsumedConcurrently: concurrency,
          ...(handleBatch
            ? {
                eachBatchAutoResolve: false,
                // A partition's fetched messages go to handleBatch in runs of up to 50 (one transaction each);
                // a failed run is handled again message by message under the retry policy.
                eachBatch: async ({ batch: { topic, partition, messages }, resolveOffset, heartbeat, isRunning, isStale }) => {
                  for (let start = 0; start < messages.length; start += 50) {
                    if (signal.aborted || !isRunning() || isStale()) return; // uncommitted: the next consumer gets them
                    const run = messages.slice(start, start + 50);
                    const events: EventEnvelope[] = [];
                    const admitted: string[] = []; // raw text of each admitted message (invalid ones are dead-lettered already)
                    for (const message of run) {
                      if (skipped(message.headers?.type?.toString())) continue; // not handled here: skipped unread
                      const raw = message.value?.toString() ?? '';
                      const event = await admit({ raw, topic, deadLetter: (record) => sendDeadLetter(group, record), logger, signing, onRejected });
                      if (!event) continue;
                      events.push(event);
                      admitted.push(raw);
                    }
                    const handled = await (events.length ? handleBatch(events) : Promise.resolve()).then(
                      () => true,
                      (error: unknown) => (logger.warn({ err: error, group, topic, partition, events: events.length }, 'event batch failed; handling its events one by one'), false),
                    );
                    if (!handled) {
                      // Offsets are committed after the whole run: a crash in between redelivers the
                      // run, and the consumer's inbox makes what was handled a no-op.
                      for (const raw of admitted) if (!(await deliverOne(topic, raw, heartbeat))) return; // stopping
                    }
                    await commit(topic, partition, run[run.length - 1].offset);
                    // Without autoResolve the fetch position moves only by resolveOffset: the run would be fetched again.
                    resolveOffset(run[run.length - 1].offset);
                    await heartbeat();
                  }
                },
              }
            : {
                // One message at a time per partition, so per-aggregate order holds.
                eachMessage: async ({ topic, partition, message, heartbeat }) => {
                  if (signal.aborted) return; // stopping: leave it uncommitted, the next consumer gets it
                  if (!skipped(message.headers?.type?.toString()) && !(await deliverOne(topic, message.value?.toString() ?? '', heartbeat))) return;
                  await commit(topic, partition, message.offset);
                },
              }),
        });
        await joined;
      } catch (error) {
        await consumer.disconnect().catch(() => undefined);
        throw error;
      }
      const subscription: Subscription = {
        async stop() {
          controller.abort();
          await consumer.disconnect(); // waits for the message in hand, then leaves the group
          subscriptions.delete(subscription);
        },
      };
      subscriptions.add(subscription);
      return subscription;
    }
  }

  /** Every message of a topic, read with a throwaway group up to the current end of each partition. */
  async function readTopic(topic: string): Promise<{ key: string; value: string | null }[]> {
    await adminConnection.ready();
    const offsets = await admin.fetchTopicOffsets(topic).catch((error: { type?: string }) => {
      if (error.type === 'UNKNOWN_TOPIC_OR_PARTITION') return []; // no dead letter was ever written
      throw error;
    });
    const ends = new Map<number, bigint>();
    for (const { partition, high, low } of offsets) if (BigInt(high) > BigInt(low)) ends.set(partition, BigInt(high) - 1n);
    if (!ends.size) return [];
    const groupId = `${clientId}.reader.${randomUUID()}`;
    const reader = kafka.consumer({ groupId, sessionTimeout: sessionTimeoutMs, maxWaitTimeInMs: 500 });
    const messages: { key: string; value: string | null }[] = [];
    try {
      await reader.connect();
      await reader.subscribe({ topics: [topic], fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        reader.on(reader.events.CRASH, (event) => reject(event.payload.error));
        reader
          .run({
            autoCommit: false,
            eachMessage: async ({ partition, message }) => {
              messages.push({ key: message.key?.toString() ?? '', value: message.value?.toString() ?? null });
              if (BigInt(message.offset) >= (ends.get(partition) ?? -1n)) ends.delete(partition);
              if (!ends.size) resolve();
            },
          })
          .catch(reject);
      });
    } finally {
      await reader.disconnect();
      await admin.deleteGroups([groupId]).catch(() => undefined);
    }
    return messages;
  }

  /** The DLQ as a compacted log: the last value per dead-letter id wins, a tombstone removes it. */
  async function deadLetters(group: string): Promise<Map<string, DeadLetterRecord>> {
    const letters = new Map<string, DeadLetterRecord>();
    for (const { key, value } of await readTopic(dlqTopic(group))) {
      if (value === null) letters.delete(key);
      else letters.set(key, JSON.parse(value) as DeadLetterRecord);
    }
    return letters;
  }

  return {
    kind: 'kafka',
    provision: (topics) => ensureTopics(topics.map((topic) => ({ topic }))),
    async publish(topic, events) {
      if (!events.length) return;
      await send(
        topic,
        events.map((event) => ({ key: event.aggregateId, value: JSON.stringify(signing ? signing.sign(event) : event), headers: { type: event.type } })),
      );
    },
    subscribe,
    async check() {
      await adminConnection.ready();
      await admin.describeCluster();
    },
    async listDeadLetters(group) {
      const letters = [...(await deadLetters(group))].map(([id, record]) => toDeadLetter(id, group, record));
      return letters.sort((a, b) => a.failedAt.localeCompare(b.failedAt));
    },
    async replayDeadLetter(group, id) {
      const record = (await deadLetters(group)).get(id);
      if (!record) return false;
      await send(record.topic, [{ key: aggregateIdOf(record.raw) ?? null, value: record.raw }]);
      await send(dlqTopic(group), [{ key: id, value: null }]);
      return true;
    },
    async close() {
      await Promise.all([...subscriptions].map((s) => s.stop()));
      await Promise.all([producer.disconnect(), admin.disconnect()]);
    },
  };
}
