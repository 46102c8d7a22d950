import type { Sequelize, Transaction } from '@cloudretail/db';

/** Which committed reservations had their units returned to stock (a refunded order). */
export function stockReturnRepository(sequelize: Sequelize) {
  return {
    /** Records the return of an order's units; false when they were already returned. */
    async claim(orderId: string, transaction: Transaction): Promise<boolean> {
      const [rows] = await sequelize.query('INSERT INTO stock_returns (order_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING order_id', { bind: [orderId], transaction });
      return (rows as unknown[]).length === 1;
    },
  };
}

export type StockReturnRepository = ReturnType<typeof stockReturnRepository>;
