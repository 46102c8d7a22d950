import { conflict, notFound } from '@cloudretail/errors';
import type { Db } from '@cloudretail/db';
import { createEvent, enqueue } from '@cloudretail/events';
import type { ProductCache } from '../data-access/product-cache';
import type { ProductRepository } from '../data-access/product-repository';
import type { Product, ProductInput, ProductList, ProductPatch, ProductQuery } from './product';

interface Deps {
  db: Db;
  products: ProductRepository;
  cache: ProductCache;
}

const snapshot = (p: Product) => ({ productId: p.id, sku: p.sku, name: p.name, category: p.category, priceCents: p.priceCents, currency: p.currency, active: p.active });

/** Only the first pages of a listing are hot enough to cache. */
const CACHED_PAGES = 3;

export function productUseCases({ db, products, cache }: Deps) {
  return {
    async createProduct(input: ProductInput): Promise<Product> {
      const product = await db.transaction(async (tx) => {
        const created = await products.insert(input, tx);
        if (!created) throw conflict(`A product with sku ${input.sku} already exists`);
        enqueue(tx, [createEvent('ProductCreated', created.id, snapshot(created))]);
        return created;
      });
      await cache.invalidate(product.id);
      return product;
    },

    async updateProduct(id: string, patch: ProductPatch): Promise<Product> {
      const product = await db.transaction(async (tx) => {
        const updated = await products.update(id, patch, tx);
        if (!updated) throw notFound('Product');
        enqueue(tx, [createEvent('ProductUpdated', id, snapshot(updated))]);
        return updated;
      });
      await cache.invalidate(id);
      return product;
    },

    /** Soft delete: the product stays for order history but leaves listings and public reads. */
    async deleteProduct(id: string): Promise<void> {
      await db.transaction(async (tx) => {
        const deleted = await products.update(id, { active: false }, tx);
        if (!deleted) throw notFound('Product');
        enqueue(tx, [createEvent('ProductDeleted', id, { productId: id })]);
      });
      await cache.invalidate(id);
    },

    /** Inactive products are visible to admins only. */
    async getProduct(id: string, { includeInactive = false } = {}): Promise<Product> {
      const product = await cache.product(id, () => products.findById(id));
      if (!product || (!product.active && !includeInactive)) throw notFound('Product');
      return product;
    },

    async listProducts(query: ProductQuery): Promise<ProductList> {
      const load = async () => ({ ...(await products.list(query)), page: query.page, limit: query.limit });
      if (query.page > CACHED_PAGES) return load();
      return cache.list(JSON.stringify([query.page, query.limit, query.q ?? '', query.category ?? '']), load);
    },
  };
}

export type ProductUseCases = ReturnType<typeof productUseCases>;
