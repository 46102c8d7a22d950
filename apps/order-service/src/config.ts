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
  ORDER_TARGET_LATENCY_MS: positiveInt(400).describe('Time from POST /orders to a final status that admission control aims at: new orders get 503 with retry-after while more sagas are in flight (all replicas) than finish per second × this'),
  ORDER_MIN_PENDING: positiveInt(50).describe('Sagas in flight always admitted, whatever the measured throughput, so an idle system takes work and can measure it'),
  ORDER_MAX_PENDING: positiveInt(200).describe('Sagas in flight (all replicas) never exceeded, whatever the measured throughput: the hard ceiling of admission control'),
  ORDER_THROUGHPUT_WINDOW_MS: positiveInt(5_000).describe('Admission control measures throughput as the sagas finished over this trailing window (longer: steadier, slower to follow)'),
  ORDER_ADMISSION_INTERVAL_MS: positiveInt(200).describe('How often the sagas in flight and finished are counted for admission control'),
  SAGA_SWEEP_INTERVAL_MS: positiveInt(5_000).describe('How often the sweeper looks for orders past the step timeout'),
}).refine((config) => config.ORDER_MIN_PENDING <= config.ORDER_MAX_PENDING, { path: ['ORDER_MIN_PENDING'], message: 'must not exceed ORDER_MAX_PENDING' });

export type Config = z.infer<typeof configSchema>;
