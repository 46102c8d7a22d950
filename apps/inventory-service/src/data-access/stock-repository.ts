import { QueryTypes, type Sequelize, type Transaction } from '@cloudretail/db';
import type { StockLevel } from '../domain/inventory';

interface Row {
  product_id: string;
  available: number;
  reserved: number;
}

const toStock = (r: Row): StockLevel => ({ productId: r.product_id, available: r.available, reserved: r.reserved });

/** A change to one product's stock, in units (negative takes away). */
export interface StockDelta {
  productId: string;
  available: number;
  reserved: number;
}

/** Stock levels as plain records. A product without a row has nothing in stock. */
export function stockRepository(sequelize: Sequelize) {
  const select = async (sql: string, bind: unknown[], transaction?: Transaction) =>
    (await sequelize.query<Row>(sql, { bind, type: QueryTypes.SELECT, transaction })).map(toStock);

  return {
    async find(productId: string, transaction?: Transaction): Promise<StockLevel | null> {
      return (await select('SELECT product_id, available, reserved FROM stock WHERE product_id = $1', [productId], transaction))[0] ?? null;
    },

    /**
     * Locks the existing rows of `productIds` until the transaction ends. Always in product_id
     * order: two transactions locking overlapping sets then queue instead of deadlocking.
     */
    async lock(productIds: string[], transaction: Transaction): Promise<Map<string, StockLevel>> {
      const rows = await select(
        'SELECT product_id, available, reserved FROM stock WHERE product_id = ANY($1::uuid[]) ORDER BY product_id FOR UPDATE',
        [productIds],
        transaction,
      );
      return new Map(rows.map((s) => [s.productId, s]));
    },

    /** Sets the available units, creating the row on first use; `reserved` is left alone. */
    async setAvailable(productId: string, available: number, transaction: Transaction): Promise<StockLevel> {
      const [row] = await select(
        `INSERT INTO stock (product_id, available) VALUES ($1, $2)
         ON CONFLICT (product_id) DO UPDATE SET available = EXCLUDED.available, updated_at = now()
         RETURNING product_id, available, reserved`,
        [productId, available],
        transaction,
      );
      return row;
    },

    /** Applies deltas to rows the caller has locked; the table's CHECK rejects anything going negative. */
    async adjust(deltas: StockDelta[], transaction: Transaction): Promise<StockLevel[]> {
      if (!deltas.length) return [];
      return select(
        `UPDATE stock s SET available = s.available + d.available, reserved = s.reserved + d.reserved, updated_at = now()
         FROM unnest($1::uuid[], $2::int[], $3::int[]) AS d (product_id, available, reserved)
         WHERE s.product_id = d.product_id
         RETURNING s.product_id, s.available, s.reserved`,
        [deltas.map((d) => d.productId), deltas.map((d) => d.available), deltas.map((d) => d.reserved)],
        transaction,
      );
    },
  };
}

export type StockRepository = ReturnType<typeof stockRepository>;
