import { authFromConfig } from '@cloudretail/auth';
import { createApp, finishApp } from '@cloudretail/http';
import { type ServiceDefinition, runMain, startService } from '@cloudretail/runtime';
import { configSchema } from './config';
import { migrations } from './data-access/migrations';
import { productCatalog } from './data-access/product-catalog';
import { reservationRepository } from './data-access/reservation-repository';
import { stockRepository } from './data-access/stock-repository';
import { stockReturnRepository } from './data-access/stock-return-repository';
import { reservationUseCases } from './domain/reservation-use-cases';
import { stockReturnUseCase } from './domain/stock-return-use-case';
import { stockUseCases } from './domain/stock-use-cases';
import { inventoryApi } from './entry-points/api/routes';
import { startOrderEventsConsumer } from './entry-points/messaging/order-events-consumer';
import { startReservationSweeper } from './entry-points/scheduler/reservation-sweeper';

export const service: ServiceDefinition<typeof configSchema> = {
  name: 'inventory-service',
  schema: configSchema,
  migrations,
  async setup({ config, logger, metrics, db, redis, transport, faults }) {
    const stock = stockRepository(db);
    const reservations = reservationRepository(db);
    const lowStockThreshold = config.LOW_STOCK_THRESHOLD;
    const useCases = {
      stock: stockUseCases({
        db,
        stock,
        catalog: productCatalog({ baseUrl: config.PRODUCT_SERVICE_URL, timeoutMs: config.PRODUCT_SERVICE_TIMEOUT_MS }),
        lowStockThreshold,
      }),
      reservations: reservationUseCases({ db, stock, reservations, reservationTtlMs: config.RESERVATION_TTL_MS, lowStockThreshold }),
    };
    const app = createApp({ logger, metrics, faults });
    inventoryApi(useCases, authFromConfig(config, { redis, logger })).mount(app);
    const sweeper = startReservationSweeper({
      intervalMs: config.RESERVATION_SWEEP_INTERVAL_MS,
      releaseExpired: () => useCases.reservations.releaseExpired(),
      logger,
      metrics,
    });
    const consumer = await startOrderEventsConsumer({
      transport,
      db,
      reservations: useCases.reservations,
      returns: stockReturnUseCase({ db, stock, reservations, returns: stockReturnRepository() }),
      logger,
    });
    return { app: finishApp(app), closers: [consumer, sweeper] };
  },
};

/** Starts the service (tests pass their own environment and port 0). */
export const start = (env: NodeJS.ProcessEnv = process.env) => startService(service, env);

if (require.main === module) runMain(service);
