import { ConfigError, boolean, list, milliseconds, positiveInt, z } from '@cloudretail/config';
import type { Logger } from '@cloudretail/logging';
import { Counter, type Registry } from '@cloudretail/metrics';
import { createKafkaTransport } from './kafka-transport';
import { createRedisTransport } from './redis-transport';
import { type EventSigning, createEventSigning } from './signing';
import type { DeliverOptions, Transport } from './transport';

/** Config keys of the event backbone; spread them into a service schema next to `dataServiceBase`. */
export const eventsConfig = {
  EVENT_TRANSPORT: z.enum(['redis', 'kafka']).default('redis').describe('Event transport: Redis Streams (REDIS_URL) or Kafka (KAFKA_BROKERS)'),
  KAFKA_BROKERS: list().optional().describe('Comma-separated Kafka bootstrap brokers (required when EVENT_TRANSPORT=kafka)'),
  KAFKA_CLIENT_ID: z.string().min(1).default('cloudretail').describe('Kafka client id (shows in broker logs and quotas)'),
  KAFKA_IDEMPOTENT: boolean(true).describe('Idempotent Kafka producer; set false only for brokers without it (the test mock cluster)'),
  KAFKA_CREATE_TOPICS: boolean(true).describe('Create Kafka topics with the admin API before use; false where the broker auto-creates them'),
  EVENT_STREAM_MAXLEN: positiveInt(1_000_000).describe('Redis: each stream is trimmed to about this many entries'),
  EVENT_CLAIM_IDLE_MS: milliseconds(30_000).describe('Redis: a message pending this long on a silent consumer is taken over by another'),
  EVENT_CONCURRENCY: positiveInt(8).describe('Aggregates (Redis) or partitions (Kafka) a consumer handles at once; each aggregate stays in order'),
  EVENT_BATCH_LINGER_MS: milliseconds(5).describe('Redis: how long a consumer waits for more messages before handling a batch that is not full (one transaction per batch: a longer wait adds latency and saves commits)'),
  EVENT_MAX_ATTEMPTS: z.coerce.number().int().positive().optional().describe('When set, also caps the handler attempts before a message goes to the dead-letter topic dlq.<group> (default: only EVENT_RETRY_FOR_MS)'),
  EVENT_RETRY_FOR_MS: milliseconds(300_000).describe('How long a failing message is retried (capped exponential backoff, full jitter) before it goes to the dead-letter topic'),
  EVENT_RETRY_BACKOFF_MS: milliseconds(200).describe('Backoff ceiling of the first retry; doubles after each failure, up to EVENT_RETRY_MAX_BACKOFF_MS; each wait is random below it (full jitter)'),
  EVENT_RETRY_MAX_BACKOFF_MS: milliseconds(30_000).describe('Cap of one retry backoff'),
  EVENT_SIGNING_KEY: z.string().min(1).optional().describe("This service's Ed25519 private key (PEM or base64 DER PKCS#8) to sign the events it publishes; required in production"),
  EVENT_VERIFY_KEYS: z.string().min(1).optional().describe('service=<base64 DER SPKI>,… the public key of every producing service; required in production'),
  EVENT_DEV_KEY_SEED: z.string().min(1).default('cloudretail-dev').describe('Outside production and without EVENT_VERIFY_KEYS: seed of the derived development key pairs (the same in every process of one platform)'),
  OUTBOX_RETENTION_HOURS: z.coerce.number().positive().default(24).describe('Published outbox rows (which hold payment tokens) are deleted this long after publishing'),
  OUTBOX_POLL_MS: milliseconds(500).describe('How often the outbox relay looks for unpublished events'),
  OUTBOX_BATCH_SIZE: positiveInt(100).describe('Outbox rows the relay claims per round'),
  OUTBOX_WAKE_DELAY_MS: milliseconds(5).describe('After a commit that wrote outbox rows, how long the relay waits so that a burst of commits shares one round'),
  EVENT_TOPIC_PREFIX: z.string().regex(/^[\w.-]*$/).default('').describe('Prefix of every topic and consumer group name (isolates test runs sharing one broker); empty in production'),
};

export type EventsConfig = z.infer<z.ZodObject<typeof eventsConfig>>;

/** What {@link createTransport} reads: the events keys (defaults apply when absent) and REDIS_URL. */
export type TransportConfig = Partial<EventsConfig> & Pick<EventsConfig, 'EVENT_TRANSPORT'> & { REDIS_URL?: string; NODE_ENV?: string };

/**
 * Builds the transport the config names, signing what it publishes and refusing what it cannot
 * attribute (signing.ts). Missing connection settings or keys fail here, naming the variable.
 * With `registry`, refused events are counted in `events_rejected_total{topic,type}`.
 */
export function createTransport(config: TransportConfig, logger: Logger, { registry }: { registry?: Registry } = {}): Transport {
  const signing = createEventSigning({
    signingKey: config.EVENT_SIGNING_KEY,
    verifyKeys: config.EVENT_VERIFY_KEYS,
    devSeed: config.EVENT_DEV_KEY_SEED,
    production: config.NODE_ENV === 'production',
  });
  const rejected = registry && new Counter({ name: 'events_rejected_total', help: 'Consumed events refused as unauthentic (unsigned, forged, or not from their producer), dead-lettered', labelNames: ['topic', 'type'] as const, registers: [registry] });
  const transport = createBareTransport(config, logger, signing, (labels) => rejected?.inc(labels));
  return config.EVENT_TOPIC_PREFIX ? withNamePrefix(transport, config.EVENT_TOPIC_PREFIX) : transport;
}

/**
 * Prefixes topic and group names (so also the `dlq.<group>` topic), giving a namespace of its own
 * to everything using the same prefix: concurrently running test files then never consume each
 * other's events.
 */
function withNamePrefix(transport: Transport, prefix: string): Transport {
  const name = (n: string) => `${prefix}${n}`;
  return {
    kind: transport.kind,
    provision: (topics) => transport.provision(topics.map(name)),
    publish: (topic, events) => transport.publish(name(topic), events),
    subscribe: (options) => transport.subscribe({ ...options, group: name(options.group), topics: options.topics.map(name) }),
    check: () => transport.check(),
    listDeadLetters: (group) => transport.listDeadLetters(name(group)),
    replayDeadLetter: (group, id) => transport.replayDeadLetter(name(group), id),
    close: () => transport.close(),
  };
}

function createBareTransport(config: TransportConfig, logger: Logger, signing: EventSigning, onRejected: DeliverOptions['onRejected']): Transport {
  const shared = {
    logger,
    signing,
    onRejected,
    maxAttempts: config.EVENT_MAX_ATTEMPTS,
    retryForMs: config.EVENT_RETRY_FOR_MS,
    retryBackoffMs: config.EVENT_RETRY_BACKOFF_MS,
    maxRetryBackoffMs: config.EVENT_RETRY_MAX_BACKOFF_MS,
  };
  if (config.EVENT_TRANSPORT === 'kafka') {
    if (!config.KAFKA_BROKERS?.length) throw new ConfigError([{ variable: 'KAFKA_BROKERS', message: 'is required when EVENT_TRANSPORT=kafka' }]);
    return createKafkaTransport({
      ...shared,
      brokers: config.KAFKA_BROKERS,
      clientId: config.KAFKA_CLIENT_ID ?? 'cloudretail',
      idempotent: config.KAFKA_IDEMPOTENT,
      createTopics: config.KAFKA_CREATE_TOPICS,
      concurrency: config.EVENT_CONCURRENCY,
    });
  }
  if (!config.REDIS_URL) throw new ConfigError([{ variable: 'REDIS_URL', message: 'is required when EVENT_TRANSPORT=redis' }]);
  return createRedisTransport({ ...shared, url: config.REDIS_URL, maxLen: config.EVENT_STREAM_MAXLEN, claimIdleMs: config.EVENT_CLAIM_IDLE_MS, concurrency: config.EVENT_CONCURRENCY, batchLingerMs: config.EVENT_BATCH_LINGER_MS });
}
