import type { Db } from '@cloudretail/db';
import { type Transport, startConsumer } from '@cloudretail/events';
import type { Closer } from '@cloudretail/shutdown';
import type { PriceRepository } from '../../data-access/price-repository';

/** A subscription of its own on the catalog topic, apart from the saga's `order-service` group. */
export const CATALOG_CONSUMER_GROUP = 'order-service-catalog';

/**
 * Keeps order-service's price read model (product_prices) current from the catalog's events, so
 * placing an order makes no call to product-service (staleness rule: data-access/product-catalog.ts).
 * Each event is applied unless a newer one already was; failures are retried, then dead-lettered
 * (`dlq.order-service-catalog`).
 */
export async function startCatalogConsumer({ transport, db, prices }: { transport: Transport; db: Db; prices: PriceRepository }): Promise<Closer> {
  return startConsumer({
    transport,
    db,
    group: CATALOG_CONSUMER_GROUP,
    handlers: {
      ProductCreated: (product, tx, event) => prices.applySnapshot(product, event.occurredAt, tx),
      ProductUpdated: (product, tx, event) => prices.applySnapshot(product, event.occurredAt, tx),
      ProductDeleted: ({ productId }, tx, event) => prices.applyDeletion(productId, event.occurredAt, tx),
    },
  });
}
