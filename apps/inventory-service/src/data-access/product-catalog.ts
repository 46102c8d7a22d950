import { serviceClient } from '@cloudretail/http';

export interface ProductCatalogOptions {
  /** product-service base URL (PRODUCT_SERVICE_URL). */
  baseUrl: string;
  timeoutMs: number;
}

/**
 * Asks product-service whether a product exists (`GET /products/:id`: 200 yes, 404 no). The
 * catalog is the owner of that fact; this service keeps no copy of it. When product-service is
 * down, slow or answers anything else, the caller gets a 503, never a guess.
 */
export function productCatalog({ baseUrl, timeoutMs }: ProductCatalogOptions) {
  const client = serviceClient({ name: 'The product catalog', baseUrl, timeoutMs });
  return {
    exists: async (productId: string): Promise<boolean> => (await client.get(`/products/${encodeURIComponent(productId)}`)) !== null,
  };
}

export type ProductCatalog = ReturnType<typeof productCatalog>;
