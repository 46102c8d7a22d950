import type { Tx } from '@cloudretail/db';

/** Which committed reservations had their units returned to stock (a refunded order). */
export function stockReturnRepository() {
  return {
    /** Records the return of an order's units; false when they were already returned. */
    async claim(orderId: string, tx: Tx): Promise<boolean> {
      return (await tx.execute('INSERT INTO stock_returns (order_id) VALUES ($1) ON CONFLICT DO NOTHING', [orderId])) === 1;
    },
  };
}

export type StockReturnRepository = ReturnType<typeof stockReturnRepository>;
