import { serviceClient } from '@cloudretail/http';
import type { PriceRepository } from './price-repository';

export interface ProductCatalogOptions {
  /** product-service base URL (PRODUCT_SERVICE_URL), asked only about products not known here yet. */
  baseUrl: string;
  timeoutMs: number;
  /** The local read model the catalog consumer keeps (price-repository.ts). */
  prices: PriceRepository;
}

/** What an order needs to know about a product at order time. */
export interface CatalogProduct {
  id: string;
  priceCents: number;
  currency: string;
  active: boolean;
}

/**
 * The catalog's prices as an order sees them. The catalog owns prices; an order copies them at
 * order time and never trusts a client's.
 *
 * Staleness rule: an order is priced at what the catalog said in the latest catalog event that
 * has arrived here (ProductCreated/ProductUpdated/ProductDeleted, applied by the catalog
 * consumer in entry-points/messaging/catalog-consumer.ts). A price change reaches orders within
 * the event lag (milliseconds while the backbone is healthy, longer while it is not); a product
 * deleted or deactivated is refused as soon as its event has arrived. An older event handled late
 * never overwrites a newer one (rows are stamped with the event's occurredAt).
 *
 * A product not known here (created before this consumer's stream history, or whose event has
 * not arrived yet) is read from product-service (`GET /products/:id`, public: no token) and the
 * answer kept, so the next order prices it locally. There a 404 (unknown, or soft-deleted and so
 * hidden) resolves null, and is not kept; down, slow or any other answer is a 503, never a guess.
 */
export function productCatalog({ baseUrl, timeoutMs, prices }: ProductCatalogOptions) {
  const client = serviceClient({ name: 'The product catalog', baseUrl, timeoutMs });

  async function fetchAndKeep(productId: string): Promise<CatalogProduct | null> {
    const body = (await client.get(`/products/${encodeURIComponent(productId)}`)) as Partial<CatalogProduct> | null;
    if (!body) return null;
    if (typeof body.priceCents !== 'number' || typeof body.currency !== 'string') throw client.unavailable(new Error(`product-service sent no price for ${productId}`));
    const product = { id: productId, priceCents: body.priceCents, currency: body.currency, active: body.active !== false };
    await prices.keepFetched(product);
    return product;
  }

  /** The products of `productIds` (uuids), in that order: one local read, product-service only for those unknown here. */
  async function findMany(productIds: string[]): Promise<(CatalogProduct | null)[]> {
    const known = await prices.find(productIds);
    return Promise.all(
      productIds.map((id) => {
        const local = known.get(id);
        return local === undefined ? fetchAndKeep(id) : local;
      }),
    );
  }

  return {
    findMany,
    /** One product (a uuid); null when unknown, deleted or deactivated. */
    async find(productId: string): Promise<CatalogProduct | null> {
      return (await findMany([productId]))[0];
    },
  };
}

export type ProductCatalog = ReturnType<typeof productCatalog>;
