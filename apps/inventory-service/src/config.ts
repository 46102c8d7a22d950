import { eventsConfig } from '@cloudretail/events';
import { dataServiceBase, port, positiveInt, url, z } from '@cloudretail/config';

export const configSchema = z.object({
  ...dataServiceBase,
  ...eventsConfig,
  PORT: port(3004).describe('HTTP port'),
  DATABASE_URL: dataServiceBase.DATABASE_URL.default('postgres://postgres@127.0.0.1:5432/cloudretail_inventory'),
  PRODUCT_SERVICE_URL: url().default('http://127.0.0.1:3002').describe('Base URL of product-service, asked whether a product exists'),
  PRODUCT_SERVICE_TIMEOUT_MS: positiveInt(2000).describe('Timeout of one product-service call; past it the request fails with 503'),
  RESERVATION_TTL_MS: positiveInt(15 * 60_000).describe('A reservation not committed within this time is released by the sweeper'),
  RESERVATION_SWEEP_INTERVAL_MS: positiveInt(30_000).describe('How often the sweeper looks for expired reservations'),
  LOW_STOCK_THRESHOLD: z.coerce.number().int().min(0).default(5).describe('LowStock is published when available drops below this many units'),
});

export type Config = z.infer<typeof configSchema>;
