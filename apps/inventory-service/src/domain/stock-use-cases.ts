import { notFound } from '@cloudretail/errors';
import type { Db } from '@cloudretail/db';
import { type EventEnvelope, createEvent, enqueue } from '@cloudretail/events';
import type { ProductCatalog } from '../data-access/product-catalog';
import type { StockRepository } from '../data-access/stock-repository';
import type { StockLevel } from './inventory';
import { dropsBelowThreshold } from './stock-policy';

interface Deps {
  db: Db;
  stock: StockRepository;
  catalog: ProductCatalog;
  lowStockThreshold: number;
}

/** Reading and setting a product's stock level. */
export function stockUseCases({ db, stock, catalog, lowStockThreshold }: Deps) {
  async function assertProductExists(productId: string): Promise<void> {
    if (!(await catalog.exists(productId))) throw notFound('Product');
  }

  return {
    /**
     * A stocked product answers from our own table; only a product we have never stocked is
     * looked up in the catalog, to tell "known but none yet" (zeros) from "no such product" (404).
     */
    async getStock(productId: string): Promise<StockLevel> {
      const level = await stock.find(productId);
      if (level) return level;
      await assertProductExists(productId);
      return { productId: productId.toLowerCase(), available: 0, reserved: 0 };
    },

    /** Sets the units on hand for sale; units held by reservations are not touched. */
    async setStock(productId: string, available: number): Promise<StockLevel> {
      await assertProductExists(productId);
      return db.transaction(async (tx) => {
        const before = (await stock.lock([productId], tx)).get(productId.toLowerCase())?.available ?? 0;
        const level = await stock.setAvailable(productId, available, tx);
        const events: EventEnvelope[] = [createEvent('StockLevelSet', level.productId, { productId: level.productId, available })];
        if (dropsBelowThreshold(before, available, lowStockThreshold)) {
          events.push(createEvent('LowStock', level.productId, { productId: level.productId, available, threshold: lowStockThreshold }));
        }
        enqueue(tx, events);
        return level;
      });
    },
  };
}

export type StockUseCases = ReturnType<typeof stockUseCases>;
