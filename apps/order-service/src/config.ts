import { eventsConfig } from '@cloudretail/events';
import { dataServiceBase, port, positiveInt, url, z } from '@cloudretail/config';

export const configSchema = z.object({
  ...dataServiceBase,
  ...eventsConfig,
  PORT: port(3003).describe('HTTP port'),
  DATABASE_URL: dataServiceBase.DATABASE_URL.default('postgres://postgres@127.0.0.1:5432/cloudretail_orders'),
  PRODUCT_SERVICE_URL: url().default('http://127.0.0.1:3002').describe('Base URL of product-service, where order prices are read'),
  PRODUCT_SERVICE_TIMEOUT_MS: positiveInt(2000).describe('Timeout of one product-service call; past it POST /orders fails with 503'),
  SAGA_STEP_TIMEOUT_MS: positiveInt(30_000).describe('An order waiting this long on one saga step (stock, then payment) is cancelled with reason timeout'),
  ORDER_PLACEMENT_CONCURRENCY: positiveInt(8).describe('POST /orders handled at once per replica, so that under overload the saga consumers still get database connections'),
  ORDER_PLACEMENT_QUEUE: positiveInt(16).describe('POST /orders waiting for a turn; beyond that the answer is 503 with retry-after (load shedding)'),
  ORDER_MAX_PENDING: positiveInt(200).describe('New orders get 503 with retry-after while this many sagas are in flight (all replicas); bounds the time to CONFIRMED under overload'),
  ORDER_ADMISSION_INTERVAL_MS: positiveInt(200).describe('How often the in-flight sagas are counted for ORDER_MAX_PENDING'),
  SAGA_SWEEP_INTERVAL_MS: positiveInt(5_000).describe('How often the sweeper looks for orders past the step timeout'),
});

export type Config = z.infer<typeof configSchema>;
