import { AppError } from '@cloudretail/errors';
import { currentRequestId } from '@cloudretail/logging';

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

const unavailable = (cause: unknown) => new AppError('service_unavailable', 'The product catalog is unavailable; try again shortly', undefined, { cause });

/**
 * Reads products from product-service (`GET /products/:id`, public: no token). The catalog owns
 * prices; an order copies them at order time and never trusts a client's. A 404 (unknown, or
 * soft-deleted and so hidden) resolves null; down, slow or any other answer is a 503, never a guess.
 */
export function productCatalog({ baseUrl, timeoutMs }: ProductCatalogOptions) {
  const base = baseUrl.replace(/\/+$/, '');

  return {
    async find(productId: string): Promise<CatalogProduct | null> {
      const requestId = currentRequestId();
      let res: Response;
      try {
        res = await fetch(`${base}/products/${encodeURIComponent(productId)}`, {
          headers: { accept: 'application/json', ...(requestId ? { 'x-request-id': requestId } : {}) },
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        throw unavailable(error);
      }
      if (res.status === 404) {
        await res.body?.cancel();
        return null;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        throw unavailable(new Error(`product-service answered ${res.status} for product ${productId}`));
      }
      const body = (await res.json().catch((error) => {
        throw unavailable(error);
      })) as Partial<CatalogProduct>;
      if (typeof body.priceCents !== 'number' || typeof body.currency !== 'string') throw unavailable(new Error(`product-service sent no price for ${productId}`));
      return { id: productId, priceCents: body.priceCents, currency: body.currency, active: body.active !== false };
    },
  };
}

export type ProductCatalog = ReturnType<typeof productCatalog>;
