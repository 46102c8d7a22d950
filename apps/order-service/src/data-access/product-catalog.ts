import { serviceClient } from '@cloudretail/http';

export interface ProductCatalogOptions {
  /** product-service base URL (PRODUCT_SERVICE_URL). */
  baseUrl: string;
  timeoutMs: number;
}

/** What an order needs to know about a product at order time. */
export interface CatalogProduct {
  id: string;
  priceCents: number;
  currency: string;
  active: boolean;
}

/**
 * Reads products from product-service (`GET /products/:id`, public: no token). The catalog owns
 * prices; an order copies them at order time and never trusts a client's. A 404 (unknown, or
 * soft-deleted and so hidden) resolves null; down, slow or any other answer is a 503, never a guess.
 */
export function productCatalog({ baseUrl, timeoutMs }: ProductCatalogOptions) {
  const client = serviceClient({ name: 'The product catalog', baseUrl, timeoutMs });
  return {
    async find(productId: string): Promise<CatalogProduct | null> {
      const body = (await client.get(`/products/${encodeURIComponent(productId)}`)) as Partial<CatalogProduct> | null;
      if (!body) return null;
      if (typeof body.priceCents !== 'number' || typeof body.currency !== 'string') throw client.unavailable(new Error(`product-service sent no price for ${productId}`));
      return { id: productId, priceCents: body.priceCents, currency: body.currency, active: body.active !== false };
    },
  };
}

export type ProductCatalog = ReturnType<typeof productCatalog>;
