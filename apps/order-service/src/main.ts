import { authFromConfig } from '@cloudretail/auth';
import { createApp, finishApp, shedLoad } from '@cloudretail/http';
import { Counter, Histogram } from '@cloudretail/metrics';
import { type ServiceDefinition, runMain, startService } from '@cloudretail/runtime';
import { configSchema } from './config';
import { migrations } from './data-access/migrations';
import { orderRepository } from './data-access/order-repository';
import { priceRepository } from './data-access/price-repository';
import { productCatalog } from './data-access/product-catalog';
import { orderLifecycle } from './domain/order-lifecycle';
import { orderUseCases } from './domain/order-use-cases';
import { sagaUseCases } from './domain/saga-use-cases';
import { orderApi } from './entry-points/api/routes';
import { sagaAdmission } from './entry-points/api/saga-admission';
import { startCatalogConsumer } from './entry-points/messaging/catalog-consumer';
import { startSagaConsumer } from './entry-points/messaging/saga-consumer';
import { startSagaTimeoutSweeper } from './entry-points/scheduler/saga-timeout-sweeper';

export const service: ServiceDefinition<typeof configSchema> = {
  name: 'order-service',
  schema: configSchema,
  migrations,
  async setup({ config, logger, metrics, db, redis, transport, faults }) {
    const outcomes = new Counter({ name: 'saga_outcomes_total', help: 'Checkout sagas by outcome', labelNames: ['outcome'] as const, registers: [metrics.registry] });
    const duration = new Histogram({
      name: 'saga_duration_seconds',
      help: 'Time from POST /orders to the first final status, by outcome',
      labelNames: ['outcome'] as const,
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [metrics.registry],
    });
    const ignored = new Counter({
      name: 'saga_events_ignored_total',
      help: 'Payment events not acted on because they do not match what the order asked for (forged or misrouted), by type and mismatch',
      labelNames: ['type', 'mismatch'] as const,
      registers: [metrics.registry],
    });
    const orders = orderRepository(db);
    const lifecycle = orderLifecycle({
      orders,
      onOutcome: (outcome, order, firstFinal) => {
        outcomes.inc({ outcome });
        if (firstFinal) duration.observe({ outcome }, (Date.parse(order.updatedAt) - Date.parse(order.createdAt)) / 1000);
      },
    });
    // Prices come from a local read model of the catalog (kept current by its events), product-service only on a miss.
    const prices = priceRepository(db);
    const useCases = orderUseCases({ db, orders, lifecycle, catalog: productCatalog({ baseUrl: config.PRODUCT_SERVICE_URL, timeoutMs: config.PRODUCT_SERVICE_TIMEOUT_MS, prices }) });
    const saga = sagaUseCases({
      db,
      orders,
      lifecycle,
      stepTimeoutMs: config.SAGA_STEP_TIMEOUT_MS,
      onIgnored: (fact) => {
        ignored.inc({ type: fact.type, mismatch: fact.mismatch });
        logger.warn(fact, 'payment event ignored: it does not match what the order asked for');
      },
    });
    const app = createApp({ logger, metrics, faults });
    // Load shedding for POST /orders: sagas in flight (all replicas), then this replica's own work.
    const admission = sagaAdmission({ db, targetLatencyMs: config.ORDER_TARGET_LATENCY_MS, minPending: config.ORDER_MIN_PENDING, maxPending: config.ORDER_MAX_PENDING, windowMs: config.ORDER_THROUGHPUT_WINDOW_MS, intervalMs: config.ORDER_ADMISSION_INTERVAL_MS, logger, registry: metrics.registry });
    const placement = shedLoad({ concurrency: config.ORDER_PLACEMENT_CONCURRENCY, queue: config.ORDER_PLACEMENT_QUEUE });
    orderApi(useCases, authFromConfig(config, { redis, logger }), [admission.guard, placement]).mount(app);
    const consumer = await startSagaConsumer({ transport, db, saga });
    const catalogConsumer = await startCatalogConsumer({ transport, db, prices });
    const sweeper = startSagaTimeoutSweeper({ intervalMs: config.SAGA_SWEEP_INTERVAL_MS, cancelTimedOut: () => saga.cancelTimedOut(), logger });
    return { app: finishApp(app), closers: [consumer, catalogConsumer, sweeper, admission.closer] };
  },
};

/** Starts the service (tests pass their own environment and port 0). */
export const start = (env: NodeJS.ProcessEnv = process.env) => startService(service, env);

if (require.main === module) runMain(service);
