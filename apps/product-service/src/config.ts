import { eventsConfig } from '@cloudretail/events';
import { dataServiceBase, port, positiveInt, z } from '@cloudretail/config';

export const configSchema = z.object({
  ...dataServiceBase,
  ...eventsConfig,
  PORT: port(3002).describe('HTTP port'),
  DATABASE_URL: dataServiceBase.DATABASE_URL.default('postgres://postgres@127.0.0.1:5432/cloudretail_products'),
  CACHE_TTL_SECONDS: positiveInt(60).describe('Lifetime of cached product reads in Redis'),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[\w.:-]*$/)
    .default('')
    .describe('Prefix of the Redis cache keys of this service (one per platform sharing a Redis)'),
});

export type Config = z.infer<typeof configSchema>;
