import { AppError } from '@cloudretail/errors';
import { currentRequestId } from '@cloudretail/logging';

export interface ProductCatalogOptions {
  /** product-service base URL (PRODUCT_SERVICE_URL). */
  baseUrl: string;
  timeoutMs: number;
}

const unavailable = (cause: unknown) =>
  new AppError('service_unavailable', 'The product catalog is unavailable; try again shortly', undefined, { cause });

/**
 * Asks product-service whether a product exists (`GET /products/:id`: 200 yes, 404 no). The
 * catalog is the owner of that fact; this service keeps no copy of it. When product-service is
 * down, slow or answers anything else, the caller gets a 503, never a guess.
 */
export function productCatalog({ baseUrl, timeoutMs }: ProductCatalogOptions) {
  const base = baseUrl.replace(/\/+$/, '');

  return {
    async exists(productId: string): Promise<boolean> {
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
      await res.body?.cancel(); // only the status matters; free the connection
      if (res.status === 200) return true;
      if (res.status === 404) return false;
      throw unavailable(new Error(`product-service answered ${res.status} for product ${productId}`));
    },
  };
}

export type ProductCatalog = ReturnType<typeof productCatalog>;
