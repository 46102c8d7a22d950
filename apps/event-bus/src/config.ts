import { eventsConfig } from '@cloudretail/events';
import { dataServiceBase, list, milliseconds, port, positiveInt, z } from '@cloudretail/config';

export const configSchema = z.object({
  ...dataServiceBase,
  ...eventsConfig,
  PORT: port(3006).describe('HTTP port'),
  DATABASE_URL: dataServiceBase.DATABASE_URL.default('postgres://postgres@127.0.0.1:5432/cloudretail_events'),
  CONSUMER_GROUPS: list()
    .default(['order-service', 'order-service-catalog', 'payment-service', 'inventory-service', 'event-bus'])
    .describe('Consumer groups whose dead letters admins may list and replay, and whose dead-letter counts are exported'),
  SSE_HEARTBEAT_MS: milliseconds(15_000).describe('Interval of the `: ping` comment on open Server-Sent Event streams (keeps proxies from timing them out)'),
  SSE_MAX_STREAMS_PER_USER: positiveInt(5).describe('Status streams one user may hold open at once, across all replicas; one more answers 429'),
  SSE_MAX_LIFETIME_MS: positiveInt(15 * 60_000).describe('A status stream is closed after this long with a `retry:` hint; the client reconnects with Last-Event-ID'),
  SSE_RECONNECT_MS: positiveInt(2_000).describe('The `retry:` reconnect delay sent when a stream reaches SSE_MAX_LIFETIME_MS'),
  SSE_FIRST_STATUS_WAIT_MS: milliseconds(5_000).describe('How long a stream opened before the first status of its order arrived waits for it before answering 404'),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[\w.:-]*$/)
    .default('')
    .describe('Prefix of the Redis pub/sub channels and keys of this service (one per platform sharing a Redis; event streams use EVENT_TOPIC_PREFIX)'),
});

export type Config = z.infer<typeof configSchema>;
