import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import Redis, { type RedisOptions } from 'ioredis';
import type { Logger } from '@cloudretail/logging';
import type { EventEnvelope } from './envelope';
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
  admit,
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
  /** Messages read per `XREADGROUP`, and the most one batch (one transaction of `handleBatch`) holds. */
  batchSize?: number;
  /** How long the batch worker waits for more messages before handling a batch that is not full. */
  batchLingerMs?: number;
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
/** A message taken from a stream, not yet acknowledged; `lane`: its stream and aggregate. */
interface Queued {
  key: string;
  id: string;
  raw: string;
  lane: string;
}
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
  batchLingerMs = 5,
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

  async function subscribe({ group, topics, consumerName = `${hostname()}-${process.pid}`, handle, handleBatch, types, ...options }: SubscribeOptions): Promise<Subscription> {
    const policy = { ...defaults, ...definedOnly(options) };
    const keys = topics.map(streamKey);
    for (const key of keys) await ensureGroup(key, group);
    const blocking = redis.duplicate({ connectionName: `events:${group}` }); // XREADGROUP BLOCK holds its connection
    blocking.on('error', () => undefined); // reported by the loop below
    const controller = new AbortController();
    const { signal } = controller;
    let ownPendingFirst = true; // after a restart, finish what this consumer was given before
    let pendingFrom = new Map(keys.map((key) => [key, '0'])); // where the re-read of our own pending messages resumes
    let lastClaimAt = 0;
    /** Messages taken and not yet acknowledged (or abandoned), as `key id`: never dispatched twice. */
    const inFlight = new Set<string>();
    /** Per `key aggregate`, the promise of its last message: one aggregate's messages run in stream order. */
    const lanes = new Map<string, Promise<void>>();
    const acks = new Map<string, string[]>();
    let flushing: Promise<void> | undefined;
    let running = 0;
    const slotWaiters: (() => void)[] = [];
    const idleWaiters: (() => void)[] = [];
    // Reading goes on while messages are in hand (a long retry holds its aggregate only), up to this many.
    const maxInFlight = batchSize * 2;
    const wanted = types && new Set(types);
    /** Messages waiting for the batch worker, in stream order. */
    const batchQueue: Queued[] = [];
    let batching: Promise<void> | undefined;
    const deadLetter = (record: DeadLetterRecord) => addDeadLetter(group, record).then(() => undefined);

    const read = async (ids: string[], block?: number) =>
      (await blocking.call('XREADGROUP', 'GROUP', group, consumerName, 'COUNT', batchSize, ...(block ? ['BLOCK', block] : []), 'STREAMS', ...keys, ...ids)) as ReadReply;

    /** Acknowledgements of the messages finishing in one turn of the event loop go out in one XACK per stream. */
    function ack(key: string, id: string) {
      acks.set(key, [...(acks.get(key) ?? []), id]);
      flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
        const batch = [...acks];
        acks.clear();
        flushing = undefined;
        for (const [stream, ids] of batch) {
          await redis.xack(stream, group, ...ids).catch((error: unknown) => {
            ownPendingFirst = true; // still ours and pending: re-read, and the inbox makes it a no-op
            logger.error({ err: error, group, stream }, 'acknowledging events failed; they will be redelivered');
          });
        }
      });
    }

    function finished(key: string, id: string) {
      inFlight.delete(`${key} ${id}`);
      idleWaiters.splice(0).forEach((wake) => wake());
    }

    async function handleOne(key: string, id: string, raw: string) {
      // Up to `concurrency` messages (so aggregates) at once.
      while (running >= concurrency) await new Promise<void>((resolve) => slotWaiters.push(resolve));
      running += 1;
      try {
        if (signal.aborted) return; // stays pending and is redelivered
        const done = await deliver({ raw, topic: key.slice(PREFIX.length), handle, ...policy, signal, logger, signing, onRejected, deadLetter });
        if (done) ack(key, id);
      } catch (error) {
        ownPendingFirst = true; // the dead-letter write failed: the message is still ours, take it again
        logger.error({ err: error, group, stream: key, id }, 'handling an event failed; it will be taken again');
      } finally {
        running -= 1;
        slotWaiters.shift()?.();
        finished(key, id);
      }
    }

    /** Queues one message on its aggregate's lane: handled on its own, after what the lane already holds. */
    function toLane({ key, id, raw, lane }: Queued) {
      const next = (lanes.get(lane) ?? Promise.resolve()).then(() => handleOne(key, id, raw));
      lanes.set(lane, next);
      void next.then(() => lanes.get(lane) === next && lanes.delete(lane));
    }

    /**
     * One batch: the messages whose aggregate has nothing on a lane go to `handleBatch` together
     * (the others join their lane, behind it). A failed batch is handed to the lanes, one message
     * each in stream order, where the retry policy and dead-lettering apply to each on its own.
     */
    async function runBatch(entries: Queued[], handleBatch: NonNullable<SubscribeOptions['handleBatch']>, laned: Set<Queued>) {
      const toLaneOf = (entry: Queued) => {
        laned.add(entry);
        toLane(entry);
      };
      const admitted: { entry: Queued; event: EventEnvelope }[] = [];
      for (const entry of entries) {
        if (lanes.has(entry.lane)) {
          toLaneOf(entry);
          continue;
        }
        const event = await admit({ raw: entry.raw, topic: entry.key.slice(PREFIX.length), deadLetter, logger, signing, onRejected });
        if (event) admitted.push({ entry, event });
        else {
          ack(entry.key, entry.id); // dead-lettered
          finished(entry.key, entry.id);
        }
      }
      if (!admitted.length) return;
      try {
        await handleBatch(admitted.map((a) => a.event));
      } catch (error) {
        logger.warn({ err: error, group, events: admitted.length }, 'event batch failed; handling its events one by one');
        admitted.forEach((a) => toLaneOf(a.entry));
        return;
      }
      for (const { entry } of admitted) {
        ack(entry.key, entry.id);
        finished(entry.key, entry.id);
      }
    }

    /** The batch worker: one batch at a time, so what arrives while one is handled makes the next one. */
    function runBatches(handleBatch: NonNullable<SubscribeOptions['handleBatch']>) {
      batching ??= (async () => {
        while (batchQueue.length && !signal.aborted) {
          // The read loop goes on meanwhile: what it takes joins this batch.
          if (batchLingerMs && batchQueue.length < batchSize) await sleep(batchLingerMs);
          const entries = batchQueue.splice(0, batchSize);
          const laned = new Set<Queued>(); // handed to their lanes, which finish them
          await runBatch(entries, handleBatch, laned).catch((error: unknown) => {
            // Not a handler failure (the dead-letter write failed): the messages are still ours, take them again.
            ownPendingFirst = true;
            entries.forEach((e) => !laned.has(e) && finished(e.key, e.id));
            logger.error({ err: error, group }, 'handling an event batch failed; it will be taken again');
          });
        }
      })().finally(() => {
        batching = undefined;
        if (batchQueue.length && !signal.aborted) runBatches(handleBatch);
      });
    }

    /**
     * Queues a read batch without waiting for it: each aggregate's messages one at a time and in
     * stream order behind what is already in hand for that aggregate; other aggregates go on.
     * A crash before the XACK redelivers handled messages, which consumers' inboxes make no-ops.
     */
    function dispatch(key: string, entries: Entry[]) {
      for (const [id, fields] of entries) {
        if (inFlight.has(`${key} ${id}`)) continue; // re-read while in hand (our own pending list)
        const type = fields ? field(fields, 'type') : undefined;
        if (!fields || (wanted && type !== undefined && !wanted.has(type))) {
          ack(key, id); // trimmed from the stream while pending, or a type this subscriber does not handle
          continue;
        }
        inFlight.add(`${key} ${id}`);
        const raw = field(fields, 'envelope') ?? '';
        const entry = { key, id, raw, lane: `${key} ${aggregateIdOf(raw) || id}` }; // garbage has no aggregate: a lane of its own
        if (handleBatch && !lanes.has(entry.lane)) batchQueue.push(entry);
        else toLane(entry);
      }
      if (handleBatch && batchQueue.length) runBatches(handleBatch);
    }

    /** Waits while `maxInFlight` messages are in hand. */
    async function roomToRead() {
      while (inFlight.size >= maxInFlight && !signal.aborted) await new Promise<void>((resolve) => idleWaiters.push(resolve));
    }

    // Messages in hand (a handler running, or a retry waiting) stay ours: touching them before they
    // reach claimIdleMs keeps XAUTOCLAIM of other consumers off them. JUSTID: delivery counts unchanged.
    const keepClaimed = setInterval(() => {
      for (const key of keys) {
        const ids = [...inFlight].filter((entry) => entry.startsWith(`${key} `)).map((entry) => entry.slice(key.length + 1));
        if (ids.length) void redis.xclaim(key, group, consumerName, Math.floor(claimIdleMs / 3), ...ids, 'JUSTID').catch(() => undefined);
      }
    }, Math.max(Math.floor(claimIdleMs / 3), 10));
    keepClaimed.unref();

    async function poll() {
      await roomToRead();
      if (ownPendingFirst) {
        const reply = await read(keys.map((key) => pendingFrom.get(key) ?? '0'));
        if (reply?.some(([, entries]) => entries.length)) {
          for (const [key, entries] of reply) {
            if (entries.length) pendingFrom.set(key, entries[entries.length - 1][0]);
            dispatch(key, entries);
          }
          return;
        }
        ownPendingFirst = false;
        pendingFrom = new Map(keys.map((key) => [key, '0']));
      }
      if (Date.now() - lastClaimAt >= claimIdleMs / 2) {
        lastClaimAt = Date.now();
        for (const key of keys) {
          const [, entries] = (await redis.xautoclaim(key, group, consumerName, claimIdleMs, '0-0', 'COUNT', batchSize)) as [string, Entry[]];
          const stolen = entries.filter(([id]) => !inFlight.has(`${key} ${id}`));
          if (stolen.length) logger.warn({ stream: key, group, count: stolen.length }, 'reclaimed messages a stalled consumer left pending');
          dispatch(key, entries);
        }
      }
      const reply = await read(keys.map(() => '>'), blockMs);
      for (const [key, entries] of reply ?? []) dispatch(key, entries);
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
          ownPendingFirst = true;
          logger.error({ err: error, group, topics }, 'reading events failed; retrying');
          await sleep(jitteredBackoff(failures, 100, 5_000), undefined, { signal }).catch(() => undefined);
        }
      }
    })();

    const subscription: Subscription = {
      async stop() {
        controller.abort(); // cuts retry waits short: those messages stay pending and are redelivered
        blocking.disconnect(); // interrupts a blocked XREADGROUP
        idleWaiters.splice(0).forEach((wake) => wake());
        await loop;
        await batching; // the batch in hand finishes; queued ones stay pending and are redelivered
        await Promise.all(lanes.values()); // handlers in hand finish
        clearInterval(keepClaimed);
        await flushing;
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
      // `type` beside the envelope: subscribers skip what they do not handle without parsing it.
      for (const event of events) multi.xadd(streamKey(topic), 'MAXLEN', '~', maxLen, '*', 'type', event.type, 'envelope', JSON.stringify(signing ? signing.sign(event) : event));
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
      // One script: the message goes back to its topic only by the call that removes it from the
      // DLQ, so two replays at once (two admins, a retried request) republish it once.
      const replayed = await redis.eval(
        "if redis.call('XDEL', KEYS[1], ARGV[1]) == 1 then redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'envelope', ARGV[3]) return 1 end return 0",
        2,
        streamKey(dlqTopic(group)),
        streamKey(letter.record.topic),
        id,
        maxLen,
        letter.record.raw,
      );
      return replayed === 1;
    },
    async close() {
      await Promise.all([...subscriptions].map((s) => s.stop()));
      // quit() lets in-flight commands finish; on a broken connection it would leave a reconnect timer behind.
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
