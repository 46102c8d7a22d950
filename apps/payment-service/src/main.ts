import { authFromConfig } from '@cloudretail/auth';
import { createApp, finishApp } from '@cloudretail/http';
import { createSequelize, dbOf } from '@cloudretail/db';
import { Counter } from '@cloudretail/metrics';
import { type ServiceDefinition, runMain, startService } from '@cloudretail/runtime';
import { configSchema } from './config';
import { migrations } from './data-access/migrations';
import { paymentRepository } from './data-access/payment-repository';
import { createPaymentProvider } from './data-access/payment-providers';
import { paymentUseCases } from './domain/payment-use-cases';
import { paymentApi } from './entry-points/api/routes';
import { startOrderEventsConsumer } from './entry-points/messaging/order-events-consumer';

export const service: ServiceDefinition<typeof configSchema> = {
  name: 'payment-service',
  schema: configSchema,
  migrations,
  async setup({ config, logger, metrics, db, redis, transport, faults }) {
    const paymentsTotal = new Counter({ name: 'payments_total', help: 'Payments reaching a status, by status', labelNames: ['status'] as const, registers: [metrics.registry] });
    // The sandbox stands in for a remote PSP: a pool of its own, so a provider call made while a
    // payment transaction holds a connection never waits on the service's pool.
    const sandboxPool = createSequelize(config.DATABASE_URL, { logger, poolMax: 2 });
    const payments = paymentUseCases({
      db,
      payments: paymentRepository(db),
      provider: createPaymentProvider(config.PAYMENT_PROVIDER, { sandboxDb: dbOf(sandboxPool) }),
      onStatus: (status) => paymentsTotal.inc({ status }),
    });
    const app = createApp({ logger, metrics, faults });
    paymentApi(payments, authFromConfig(config, { redis, logger })).mount(app);
    const consumer = await startOrderEventsConsumer({ transport, db, payments });
    return { app: finishApp(app), closers: [consumer, { name: 'sandbox-provider', close: () => sandboxPool.close() }] };
  },
};

/** Starts the service (tests pass their own environment and port 0). */
export const start = (env: NodeJS.ProcessEnv = process.env) => startService(service, env);

if (require.main === module) runMain(service);
