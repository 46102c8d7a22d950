import { eventsConfig } from '@cloudretail/events';
import { dataServiceBase, list, milliseconds, port, z } from '@cloudretail/config';

export const configSchema = z.object({
  ...dataServiceBase,
  ...eventsConfig,
  PORT: port(3006).describe('HTTP port'),
  DATABASE_URL: dataServiceBase.DATABASE_URL.default('postgres://postgres@127.0.0.1:5432/cloudretail_events'),
  CONSUMER_GROUPS: list()
    .default(['order-service', 'payment-service', 'inventory-service', 'event-bus'])
    .describe('Consumer groups whose dead letters admins may list and replay, and whose dead-letter counts are exported'),
  SSE_HEARTBEAT_MS: milliseconds(15_000).describe('Interval of the `: ping` comment on open Server-Sent Event streams (keeps proxies from timing them out)'),
});

export type Config = z.infer<typeof configSchema>;
