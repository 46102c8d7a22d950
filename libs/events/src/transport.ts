import { setTimeout as sleep } from 'node:timers/promises';
import { type Logger, runWithContext } from '@cloudretail/logging';
import { type EventEnvelope, parseEvent } from './envelope';

/** Handles one event. Throwing means "not handled": the message is retried, then dead-lettered. */
export type EventHandler = (event: EventEnvelope) => Promise<unknown>;

export interface SubscribeOptions {
  /** Consumer group: every group gets every message; consumers of one group share the work. */
  group: string;
  topics: string[];
  /** Stable name of this consumer within the group (Redis: owner of its pending messages). */
  consumerName?: string;
  handle: EventHandler;
  /** Handler attempts before the message goes to the dead-letter topic. */
  maxAttempts?: number;
  /** Backoff before the 2nd attempt; doubles after each failure. */
  retryBackoffMs?: number;
}

export interface Subscription {
  /** Finishes the message in hand (or abandons it unacknowledged mid-retry) and leaves the group. */
  stop(): Promise<void>;
}

/** A message that could not be handled, kept on `dlq.<group>` until an admin replays it. */
export interface DeadLetter {
  id: string;
  group: string;
  /** Topic the message came from, and where a replay sends it. */
  topic: string;
  reason: string;
  /** Handler attempts made; 0 when the envelope itself was invalid. */
  attempts: number;
  failedAt: string;
  /** The original message: the parsed JSON when it was JSON, else the raw text. */
  envelope: unknown;
}

/** The event backbone as services see it; {@link createTransport} picks Redis Streams or Kafka. */
export interface Transport {
  readonly kind: 'redis' | 'kafka';
  /** Creates topics (Kafka) ahead of use; Redis creates streams on first use. */
  provision(topics: string[]): Promise<void>;
  /** Publishes in order; the aggregateId is the Kafka message key, so one aggregate stays on one partition. */
  publish(topic: string, events: EventEnvelope[]): Promise<void>;
  /** Resolves once the consumer has joined its group and is receiving. */
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /** Readiness probe: throws when the broker is unreachable. */
  check(): Promise<void>;
  listDeadLetters(group: string): Promise<DeadLetter[]>;
  /** Republishes a dead letter to its source topic and removes it from the DLQ; false if unknown. */
  replayDeadLetter(group: string, id: string): Promise<boolean>;
  /** Stops every subscription, then disconnects. */
  close(): Promise<void>;
}

export const dlqTopic = (group: string) => `dlq.${group}`;

export const DEFAULT_MAX_ATTEMPTS = 5;
export const DEFAULT_RETRY_BACKOFF_MS = 200;

/** The fields a DLQ record stores, whatever the transport. */
export interface DeadLetterRecord {
  topic: string;
  reason: string;
  attempts: number;
  failedAt: string;
  /** The original message exactly as received. */
  raw: string;
}

export function toDeadLetter(id: string, group: string, record: DeadLetterRecord): DeadLetter {
  let envelope: unknown = record.raw;
  try {
    envelope = JSON.parse(record.raw);
  } catch {
    // not JSON: keep the raw text, it is what an admin needs to see
  }
  return { id, group, topic: record.topic, reason: record.reason, attempts: record.attempts, failedAt: record.failedAt, envelope };
}

/** The aggregate id of a raw message, for keying a replay; undefined when it is garbage. */
export function aggregateIdOf(raw: string): string | undefined {
  try {
    const id = (JSON.parse(raw) as { aggregateId?: unknown }).aggregateId;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

const describe = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

export interface DeliverOptions {
  raw: string;
  topic: string;
  handle: EventHandler;
  maxAttempts: number;
  retryBackoffMs: number;
  deadLetter: (record: DeadLetterRecord) => Promise<void>;
  /** Aborted when the subscription stops: cuts a retry backoff short. */
  signal: AbortSignal;
  logger: Logger;
}

/**
 * The poison-message policy both transports share: parse, call the handler with retries and
 * exponential backoff, dead-letter after `maxAttempts` (or at once for an invalid envelope).
 * Resolves `true` when the message may be acknowledged, `false` when it was abandoned because the
 * subscription is stopping (it stays unacknowledged and is redelivered).
 */
export async function deliver({ raw, topic, handle, maxAttempts, retryBackoffMs, deadLetter, signal, logger }: DeliverOptions): Promise<boolean> {
  let event: EventEnvelope;
  try {
    event = parseEvent(JSON.parse(raw));
  } catch (error) {
    logger.error({ err: error, topic }, 'invalid event envelope; dead-lettered');
    await deadLetter({ topic, reason: `invalid envelope: ${describe(error)}`, attempts: 0, failedAt: new Date().toISOString(), raw });
    return true;
  }
  return runWithContext({ requestId: event.correlationId ?? event.id }, async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        await handle(event);
        return true;
      } catch (error) {
        const context = { err: error, topic, eventId: event.id, type: event.type, attempt };
        if (attempt >= maxAttempts) {
          logger.error(context, 'event handler failed; dead-lettered');
          await deadLetter({ topic, reason: describe(error), attempts: attempt, failedAt: new Date().toISOString(), raw });
          return true;
        }
        logger.warn(context, 'event handler failed; retrying');
        const stopped = await sleep(retryBackoffMs * 2 ** (attempt - 1), false, { signal }).catch(() => true);
        if (stopped) return false;
      }
    }
  });
}
