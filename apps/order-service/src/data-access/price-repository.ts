import type { Db, Tx } from '@cloudretail/db';
import type { CatalogProduct } from './product-catalog';

/** Price and currency are null only on an inactive row (a CHECK), which is read as "gone". */
interface Row {
  product_id: string;
  price_cents: string;
  currency: string;
  active: boolean;
}

/** What a catalog event says about a product's price (ProductCreated/ProductUpdated carry it all). */
export interface PriceSnapshot {
  productId: string;
  priceCents: number;
  currency: string;
  active: boolean;
}

/**
 * Only a row stamped with an older event (or none: fetched over HTTP) gives way. Equal stamps
 * (same millisecond) let the later-handled event win, which is stream order.
 */
const NEWER = 'WHERE product_prices.event_at IS NULL OR product_prices.event_at <= EXCLUDED.event_at';

/**
 * order-service's copy of the catalog's prices (table product_prices), kept by the catalog
 * consumer. Each row is stamped with the `occurredAt` of the event it comes from, so an older
 * event handled late (a replay, or two replicas of the consumer) never overwrites a newer one.
 */
export function priceRepository(db: Db) {
  return {
    /**
     * The products of `ids` known here. A product present with null is known to be gone
     * (deleted or deactivated); one absent has never been heard of here.
     */
    async find(ids: string[]): Promise<Map<string, CatalogProduct | null>> {
      const rows = await db.query<Row>('SELECT product_id, price_cents, currency, active FROM product_prices WHERE product_id = ANY($1::uuid[])', [ids]);
      return new Map(rows.map((r) => [r.product_id, r.active ? { id: r.product_id, priceCents: Number(r.price_cents), currency: r.currency, active: true } : null]));
    },

    /** ProductCreated / ProductUpdated, unless a newer event is already applied. */
    async applySnapshot({ productId, priceCents, currency, active }: PriceSnapshot, occurredAt: string, tx: Tx): Promise<void> {
      await tx.execute(
        `INSERT INTO product_prices (product_id, price_cents, currency, active, event_at) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (product_id) DO UPDATE SET price_cents = EXCLUDED.price_cents, currency = EXCLUDED.currency, active = EXCLUDED.active,
           event_at = EXCLUDED.event_at, updated_at = now()
         ${NEWER}`,
        [productId, priceCents, currency, active, occurredAt],
      );
    },

    /**
     * ProductDeleted (a soft delete in the catalog), unless a newer event is already applied. A
     * product never seen here still gets a row, without a price: it answers "gone" locally, and
     * an older event replayed later cannot bring it back.
     */
    async applyDeletion(productId: string, occurredAt: string, tx: Tx): Promise<void> {
      await tx.execute(
        `INSERT INTO product_prices (product_id, active, event_at) VALUES ($1, false, $2)
         ON CONFLICT (product_id) DO UPDATE SET active = false, event_at = EXCLUDED.event_at, updated_at = now()
         ${NEWER}`,
        [productId, occurredAt],
      );
    },

    /**
     * Keeps what product-service answered on a miss, unstamped: any event about the product
     * replaces it, and one already applied is kept. (An event older than this answer may then
     * win for a moment, until the newer events behind it in the stream arrive.)
     */
    async keepFetched({ id, priceCents, currency, active }: CatalogProduct): Promise<void> {
      await db.execute('INSERT INTO product_prices (product_id, price_cents, currency, active) VALUES ($1, $2, $3, $4) ON CONFLICT (product_id) DO NOTHING', [id, priceCents, currency, active]);
    },
  };
}

export type PriceRepository = ReturnType<typeof priceRepository>;
