import { ConfigError, boolean, list, milliseconds, positiveInt, z } from '@cloudretail/config';
import type { Logger } from '@cloudretail/logging';
import { createKafkaTransport } from './kafka-transport';
import { createRedisTransport } from './redis-transport';
import type { Transport } from './transport';

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
  EVENT_MAX_ATTEMPTS: positiveInt(5).describe('Handler attempts before a message goes to the dead-letter topic dlq.<group>'),
  EVENT_RETRY_BACKOFF_MS: milliseconds(200).describe('Backoff before the second handler attempt; doubles after each failure'),
  OUTBOX_POLL_MS: milliseconds(500).describe('How often the outbox relay looks for unpublished events'),
  OUTBOX_BATCH_SIZE: positiveInt(100).describe('Outbox rows the relay claims per round'),
  OUTBOX_WAKE_DELAY_MS: milliseconds(5).describe('After a commit that wrote outbox rows, how long the relay waits so that a burst of commits shares one round'),
  EVENT_TOPIC_PREFIX: z.string().regex(/^[\w.-]*$/).default('').describe('Prefix of every topic and consumer group name (isolates test runs sharing one broker); empty in production'),
};

export type EventsConfig = z.infer<z.ZodObject<typeof eventsConfig>>;

/** What {@link createTransport} reads: the events keys (defaults apply when absent) and REDIS_URL. */
export type TransportConfig = Partial<EventsConfig> & Pick<EventsConfig, 'EVENT_TRANSPORT'> & { REDIS_URL?: string };

/** Builds the transport the config names. Missing connection settings fail here, naming the variable. */
export function createTransport(config: TransportConfig, logger: Logger): Transport {
  const transport = createBareTransport(config, logger);
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

function createBareTransport(config: TransportConfig, logger: Logger): Transport {
  const shared = { logger, maxAttempts: config.EVENT_MAX_ATTEMPTS, retryBackoffMs: config.EVENT_RETRY_BACKOFF_MS };
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
  return createRedisTransport({ ...shared, url: config.REDIS_URL, maxLen: config.EVENT_STREAM_MAXLEN, claimIdleMs: config.EVENT_CLAIM_IDLE_MS, concurrency: config.EVENT_CONCURRENCY });
}
