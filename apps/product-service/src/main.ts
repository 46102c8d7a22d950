import { authFromConfig } from '@cloudretail/auth';
import { createApp, finishApp } from '@cloudretail/http';
import { type ServiceDefinition, runMain, startService } from '@cloudretail/runtime';
import { configSchema } from './config';
import { migrations } from './data-access/migrations';
import { productCache } from './data-access/product-cache';
import { productRepository } from './data-access/product-repository';
import { productUseCases } from './domain/product-use-cases';
import { productApi } from './entry-points/api/routes';

export const service: ServiceDefinition<typeof configSchema> = {
  name: 'product-service',
  schema: configSchema,
  migrations,
  // Redis is a cache here (reads go to the database without it) and the event backbone only
  // delays ProductCreated/Updated/Deleted (the outbox keeps them): neither takes it out of rotation.
  critical: [],
  async setup({ config, logger, metrics, db, redis, faults }) {
    const useCases = productUseCases({
      db,
      products: productRepository(db),
      cache: productCache(redis, logger, { ttlSeconds: config.CACHE_TTL_SECONDS, prefix: config.REDIS_KEY_PREFIX }),
    });
    const app = createApp({ logger, metrics, faults });
    productApi(useCases, authFromConfig(config, { redis, logger })).mount(app);
    return { app: finishApp(app) };
  },
};

/** Starts the service (tests pass their own environment and port 0). */
export const start = (env: NodeJS.ProcessEnv = process.env) => startService(service, env);

if (require.main === module) runMain(service);
