import { setTimeout as sleep } from 'node:timers/promises';
import { type Logger, runWithContext } from '@cloudretail/logging';
import { type EventEnvelope, parseEvent } from './envelope';
import { jitteredBackoff } from './backoff';
import { type EventSigning, UnauthenticEventError } from './signing';

/** Handles one event. Throwing means "not handled": the message is retried, then dead-lettered. */
export type EventHandler = (event: EventEnvelope) => Promise<unknown>;

export interface SubscribeOptions {
  /** Consumer group: every group gets every message; consumers of one group share the work. */
  group: string;
  topics: string[];
  /** Stable name of this consumer within the group (Redis: owner of its pending messages). */
  consumerName?: string;
  handle: EventHandler;
  /**
   * Handles a run of messages at once (one transaction, see consumer.ts), in stream order. When it
   * throws, each of its events goes to `handle` one by one under the retry policy, so one poison
   * event neither blocks nor redoes the others. Without it every message goes to `handle`.
   */
  handleBatch?: (events: EventEnvelope[]) => Promise<void>;
  /** Event types this subscriber handles: other messages are acknowledged unread (no parsing, no signature check). */
  types?: readonly string[];
  /** When set, caps the handler attempts before the message goes to the dead-letter topic. */
  maxAttempts?: number;
  /** How long a failing message is retried before it goes to the dead-letter topic. */
  retryForMs?: number;
  /** Ceiling of the first retry's random wait; doubles after each failure. */
  retryBackoffMs?: number;
  /** Cap of one retry's wait. */
  maxRetryBackoffMs?: number;
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

/** The retry policy's defaults: minutes of retries, so a database failover or a short outage dead-letters nothing. */
export const RETRY_DEFAULTS = { retryForMs: 300_000, retryBackoffMs: 200, maxRetryBackoffMs: 30_000 } as const;
export type RetryPolicy = Pick<SubscribeOptions, 'maxAttempts' | 'retryForMs' | 'retryBackoffMs' | 'maxRetryBackoffMs'>;

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

/** `{ ...defaults, ...options }` without an explicit `undefined` overriding a default. */
export const definedOnly = <T extends object>(options: T): Partial<T> => Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<T>;

const describe = (error: unknown) => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

export interface DeliverOptions extends RetryPolicy {
  raw: string;
  topic: string;
  handle: EventHandler;
  deadLetter: (record: DeadLetterRecord) => Promise<void>;
  /** Aborted when the subscription stops: cuts a retry backoff short. */
  signal: AbortSignal;
  logger: Logger;
  /** Verifies who produced the event; without it every valid envelope is believed (tests of the transport alone). */
  signing?: EventSigning;
  /** Called for each event refused as unauthentic (a metric). */
  onRejected?: (info: { topic: string; type: string }) => void;
}

/** Parses and authenticates a message; after dead-lettering an invalid or unauthentic one, resolves undefined. */
export async function admit({ raw, topic, deadLetter, logger, signing, onRejected }: Pick<DeliverOptions, 'raw' | 'topic' | 'deadLetter' | 'logger' | 'signing' | 'onRejected'>): Promise<EventEnvelope | undefined> {
  try {
    const json = JSON.parse(raw) as Record<string, unknown>;
    const event = parseEvent(json);
    // The raw JSON, not the parsed event: schema parsing may drop fields the producer signed.
    signing?.verify(json);
    return event;
  } catch (error) {
    const unauthentic = error instanceof UnauthenticEventError;
    if (unauthentic) {
      const type = String((JSON.parse(raw) as { type?: unknown }).type);
      onRejected?.({ topic, type });
      logger.error({ topic, type, reason: error.message }, 'unauthentic event refused; dead-lettered, not handled');
    } else logger.error({ err: error, topic }, 'invalid event envelope; dead-lettered');
    await deadLetter({ topic, reason: `${unauthentic ? 'unauthentic event' : 'invalid envelope'}: ${describe(error)}`, attempts: 0, failedAt: new Date().toISOString(), raw });
    return undefined;
  }
}

/**
 * The poison-message policy both transports share: parse and authenticate ({@link admit}), call the handler with
 * retries (capped exponential backoff with full jitter), dead-letter once the next wait would pass
 * `retryForMs` or `maxAttempts` is reached (at once for an invalid or unauthentic envelope).
 * Resolves `true` when the message may be acknowledged, `false` when it was abandoned because the
 * subscription is stopping (it stays unacknowledged and is redelivered).
 */
export async function deliver({ raw, topic, handle, deadLetter, signal, logger, signing, onRejected, ...policy }: DeliverOptions): Promise<boolean> {
  const { maxAttempts, retryForMs, retryBackoffMs, maxRetryBackoffMs } = { ...RETRY_DEFAULTS, ...definedOnly(policy) };
  const event = await admit({ raw, topic, deadLetter, logger, signing, onRejected });
  if (!event) return true;
  return runWithContext({ requestId: event.correlationId ?? event.id }, async () => {
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        await handle(event);
        return true;
      } catch (error) {
        const waitMs = jitteredBackoff(attempt - 1, retryBackoffMs, maxRetryBackoffMs);
        const context = { err: error, topic, eventId: event.id, type: event.type, attempt };
        if ((maxAttempts !== undefined && attempt >= maxAttempts) || Date.now() - started + waitMs > retryForMs) {
          logger.error(context, 'event handler failed; dead-lettered');
          await deadLetter({ topic, reason: describe(error), attempts: attempt, failedAt: new Date().toISOString(), raw });
          return true;
        }
        logger.warn({ ...context, waitMs }, 'event handler failed; retrying');
        // Aborted when the subscription stops: the message stays unacknowledged and is redelivered.
        const stopped = await sleep(waitMs, false, { signal }).catch(() => true);
        if (stopped) return false;
      }
    }
  });
}
