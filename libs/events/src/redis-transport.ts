import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis, { type RedisOptions } from 'ioredis';
import type { Logger } from '@cloudretail/logging';
import type { EventSigning } from './signing';
import { jitteredBackoff } from './backoff';
import {
  type DeadLetterRecord,
  type DeliverOptions,
  aggregateIdOf,
  definedOnly,
  type SubscribeOptions,
  type Subscription,
  type Transport,
  deliver,
  dlqTopic,
  toDeadLetter,
} from './transport';

export interface RedisTransportOptions {
  url: string;
  logger: Logger;
  /** Each stream is trimmed to about this many entries (`XADD MAXLEN ~`). */
  maxLen?: number;
  /** A message left pending this long by a consumer is taken over by another (`XAUTOCLAIM`). Must exceed the worst handling time. */
  claimIdleMs?: number;
  /** How long one `XREADGROUP` waits for new messages. */
  blockMs?: number;
  /** Messages read per `XREADGROUP`. */
  batchSize?: number;
  /** Aggregates of a read batch handled at once; one aggregate's messages are always handled one at a time, in order. */
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

const PREFIX = 'events:';
/** The Redis key of a topic's stream. */
export const streamKey = (topic: string) => `${PREFIX}${topic}`;

type Entry = [id: string, fields: string[] | null];
type ReadReply = [key: string, entries: Entry[]][] | null;

const field = (fields: string[], name: string) => {
  const index = fields.indexOf(name);
  return index >= 0 && index % 2 === 0 ? fields[index + 1] : undefined;
};

/** Runs a MULTI and throws the first command error (ioredis reports them per command). */
async function execOrThrow(multi: ReturnType<Redis['multi']>): Promise<void> {
  const results = await multi.exec();
  const failed = results?.find(([error]) => error);
  if (!results || failed) throw failed?.[0] ?? new Error('redis transaction aborted');
}

/**
 * An ioredis client that fails commands fast while disconnected (callers retry) instead of queueing
 * them forever, and logs losing and regaining its connection once each.
 */
export function connectRedis(url: string, logger: Logger, name: string, options: RedisOptions = {}): Redis {
  // A short disconnectTimeout: ioredis keeps a timer that long after disconnect() when the socket
  // had already died, which holds the process open at shutdown.
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 5_000, disconnectTimeout: 100, retryStrategy: (n) => 100 + jitteredBackoff(n, 100, 2_000) /* jitter: replicas do not reconnect in step */, connectionName: name, ...options });
  let down = false;
  redis.on('error', (error) => {
    if (!down) logger.warn({ err: error, resource: name }, 'redis connection error');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info({ resource: name }, 'redis connection restored');
    down = false;
  });
  return redis;
}

/**
 * Redis Streams transport: one stream per topic (`events:<topic>`), one consumer group per
 * subscriber group. A consumer handles one aggregate's messages one at a time, in stream order,
 * and different aggregates concurrently (Redis has no partitions: a group with several consumers
 * does not keep per-aggregate order across them).
 */
export function createRedisTransport({
  url,
  logger,
  maxLen = 1_000_000,
  claimIdleMs = 30_000,
  blockMs = 5_000,
  batchSize = 50,
  concurrency = 8,
  maxAttempts,
  retryForMs,
  retryBackoffMs,
  maxRetryBackoffMs,
  signing,
  onRejected,
}: RedisTransportOptions): Transport {
  const redis = connectRedis(url, logger, 'events');
  const subscriptions = new Set<Subscription>();

  async function ensureGroup(key: string, group: string) {
    // '0': a new group starts at the beginning of the retained stream, so nothing published
    // between deploying a producer and its first consumer is missed (consumers are idempotent).
    await redis.xgroup('CREATE', key, group, '0', 'MKSTREAM').catch((error: Error) => {
      if (!error.message.startsWith('BUSYGROUP')) throw error;
    });
  }

  const addDeadLetter = (group: string, record: DeadLetterRecord) =>
    redis.xadd(streamKey(dlqTopic(group)), 'MAXLEN', '~', maxLen, '*', 'topic', record.topic, 'reason', record.reason, 'attempts', record.attempts, 'failedAt', record.failedAt, 'envelope', record.raw);

  const defaults = definedOnly({ maxAttempts, retryForMs, retryBackoffMs, maxRetryBackoffMs });

  async function subscribe({ group, topics, consumerName = `${hostname()}-${process.pid}`, handle, ...options }: SubscribeOptions): Promise<Subscription> {
    const policy = { ...defaults, ...definedOnly(options) };
    const keys = topics.map(streamKey);
    for (const key of keys) await ensureGroup(key, group);
    const blocking = redis.duplicate({ connectionName: `events:${group}` }); // XREADGROUP BLOCK holds its connection
    blocking.on('error', () => undefined); // reported by the loop below
    const controller = new AbortController();
    const { signal } = controller;
    let ownPendingFirst = true; // after a restart, finish what this consumer was given before
    let lastClaimAt = 0;

    const read = async (id: '0' | '>', block?: number) =>
      (await blocking.call('XREADGROUP', 'GROUP', group, consumerName, 'COUNT', batchSize, ...(block ? ['BLOCK', block] : []), 'STREAMS', ...keys, ...keys.map(() => id))) as ReadReply;

    /**
     * Handles a read batch: each aggregate's messages one at a time and in stream order, up to
     * `concurrency` aggregates at once. Then acknowledges every message that was handled or
     * dead-lettered with one XACK (also when another one failed or the subscription stops).
     * A crash before that XACK redelivers handled messages, which consumers' inboxes make no-ops.
     */
    async function processEntries(key: string, entries: Entry[]) {
      const done: string[] = [];
      const lanes = new Map<string, { id: string; raw: string | null }[]>();
      for (const [id, fields] of entries) {
        const raw = fields ? (field(fields, 'envelope') ?? '') : null; // null: trimmed from the stream while pending
        const aggregate = (raw && aggregateIdOf(raw)) || id; // garbage has no aggregate: a lane of its own
        const lane = lanes.get(aggregate);
        if (lane) lane.push({ id, raw });
        else lanes.set(aggregate, [{ id, raw }]);
      }
      const queue = [...lanes.values()];
      const worker = async () => {
        for (let lane = queue.shift(); lane; lane = queue.shift()) {
          for (const { id, raw } of lane) {
            if (signal.aborted) return; // the rest stays pending and is redelivered
            const ack =
              raw === null ||
              (await deliver({ raw, topic: key.slice(PREFIX.length), handle, ...policy, signal, logger, signing, onRejected, deadLetter: (record) => addDeadLetter(group, record).then(() => undefined) }));
            if (ack) done.push(id);
          }
        }
      };
      const results = await Promise.allSettled(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
      if (done.length) await redis.xack(key, group, ...done);
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    }

    async function poll() {
      if (ownPendingFirst) {
        const reply = await read('0');
        if (reply?.some(([, entries]) => entries.length)) {
          for (const [key, entries] of reply) await processEntries(key, entries);
          return;
        }
        ownPendingFirst = false;
      }
      if (Date.now() - lastClaimAt >= claimIdleMs / 2) {
        lastClaimAt = Date.now();
        for (const key of keys) {
          const [, entries] = (await redis.xautoclaim(key, group, consumerName, claimIdleMs, '0-0', 'COUNT', batchSize)) as [string, Entry[]];
          if (entries.length) logger.warn({ stream: key, group, count: entries.length }, 'reclaimed messages a stalled consumer left pending');
          await processEntries(key, entries);
        }
      }
      const reply = await read('>', blockMs);
      for (const [key, entries] of reply ?? []) await processEntries(key, entries);
    }

    const loop = (async () => {
      let failures = 0;
      while (!signal.aborted) {
        try {
          await poll();
          failures = 0;
        } catch (error) {
          if (signal.aborted) break;
          if (error instanceof Error && error.message.startsWith('NOGROUP')) {
            for (const key of keys) await ensureGroup(key, group).catch(() => undefined); // stream deleted under us
            continue;
          }
          failures += 1;
          ownPendingFirst = true; // a message whose ack or dead-letter write failed is still ours: retry it
          logger.error({ err: error, group, topics }, 'reading events failed; retrying');
          await sleep(jitteredBackoff(failures, 100, 5_000), undefined, { signal }).catch(() => undefined);
        }
      }
    })();

    const subscription: Subscription = {
      async stop() {
        controller.abort();
        blocking.disconnect(); // interrupts a blocked XREADGROUP; a message in hand finishes first
        await loop;
        subscriptions.delete(subscription);
      },
    };
    subscriptions.add(subscription);
    return subscription;
  }

  async function readDeadLetters(group: string, start = '-', end = '+') {
    const entries = await redis.xrange(streamKey(dlqTopic(group)), start, end);
    return entries.map(([id, fields]) => ({
      id,
      record: {
        topic: field(fields, 'topic') ?? '',
        reason: field(fields, 'reason') ?? '',
        attempts: Number(field(fields, 'attempts') ?? 0),
        failedAt: field(fields, 'failedAt') ?? '',
        raw: field(fields, 'envelope') ?? '',
      },
    }));
  }

  return {
    kind: 'redis',
    // Streams and groups are created on first use (XADD, XGROUP CREATE … MKSTREAM): nothing to
    // create ahead, so provisioning only proves the connection.
    provision: async () => {
      await redis.ping();
    },
    async publish(topic, events) {
      if (!events.length) return;
      const multi = redis.multi();
      for (const event of events) multi.xadd(streamKey(topic), 'MAXLEN', '~', maxLen, '*', 'envelope', JSON.stringify(signing ? signing.sign(event) : event));
      await execOrThrow(multi);
    },
    subscribe,
    check: async () => {
      await redis.ping();
    },
    async listDeadLetters(group) {
      return (await readDeadLetters(group)).map(({ id, record }) => toDeadLetter(id, group, record));
    },
    async replayDeadLetter(group, id) {
      const [letter] = await readDeadLetters(group, id, id);
      if (!letter) return false;
      // One transaction: the message is back on its topic and gone from the DLQ, or neither.
      await execOrThrow(redis.multi().xadd(streamKey(letter.record.topic), 'MAXLEN', '~', maxLen, '*', 'envelope', letter.record.raw).xdel(streamKey(dlqTopic(group)), id));
      return true;
    },
    async close() {
      await Promise.all([...subscriptions].map((s) => s.stop()));
      // quit() lets in-flight commands finish; on a broken connection it would leave a reconnect timer behind.
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
