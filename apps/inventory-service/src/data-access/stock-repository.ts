import type { Db, Tx } from '@cloudretail/db';
import type { StockLevel } from '../domain/inventory';

export interface StockRow {
  product_id: string;
  available: number;
  reserved: number;
}

export const toStock = (r: StockRow): StockLevel => ({ productId: r.product_id, available: r.available, reserved: r.reserved });

/** A change to one product's stock, in units (negative takes away). */
export interface StockDelta {
  productId: string;
  available: number;
  reserved: number;
}

/**
 * The UPDATE that applies deltas passed as parameters `$n` (product ids), `$n+1` (available) and
 * `$n+2` (reserved), with {@link deltaParams}. Shared with the reservation statements that move stock
 * in the same statement as their own write. The rows must be locked already (see `lock`): the join
 * updates them in no particular order.
 */
export const applyDeltasSql = (n: number) =>
  `UPDATE stock s SET available = s.available + d.available, reserved = s.reserved + d.reserved, updated_at = now()
   FROM unnest($${n}::uuid[], $${n + 1}::int[], $${n + 2}::int[]) AS d (product_id, available, reserved)
   WHERE s.product_id = d.product_id`;

export const deltaParams = (deltas: StockDelta[]) => [deltas.map((d) => d.productId), deltas.map((d) => d.available), deltas.map((d) => d.reserved)];

/** Stock levels as plain records. A product without a row has nothing in stock. */
export function stockRepository(db: Db) {
  const select = async (sql: string, params: unknown[], tx?: Tx) => (await (tx ?? db).query<StockRow>(sql, params)).map(toStock);

  return {
    async find(productId: string, tx?: Tx): Promise<StockLevel | null> {
      return (await select('SELECT product_id, available, reserved FROM stock WHERE product_id = $1', [productId], tx))[0] ?? null;
    },

    /**
     * Locks the existing rows of `productIds` until the transaction ends. Always in product_id
     * order: two transactions locking overlapping sets then queue instead of deadlocking.
     */
    async lock(productIds: string[], tx: Tx): Promise<Map<string, StockLevel>> {
      const rows = await select('SELECT product_id, available, reserved FROM stock WHERE product_id = ANY($1::uuid[]) ORDER BY product_id FOR UPDATE', [productIds], tx);
      return new Map(rows.map((s) => [s.productId, s]));
    },

    /** Sets the available units, creating the row on first use; `reserved` is left alone. */
    async setAvailable(productId: string, available: number, tx: Tx): Promise<StockLevel> {
      const [row] = await select(
        `INSERT INTO stock (product_id, available) VALUES ($1, $2)
         ON CONFLICT (product_id) DO UPDATE SET available = EXCLUDED.available, updated_at = now()
         RETURNING product_id, available, reserved`,
        [productId, available],
        tx,
      );
      return row;
    },

    /** Applies deltas to rows the caller has locked; the table's CHECK rejects anything going negative. */
    async adjust(deltas: StockDelta[], tx: Tx): Promise<void> {
      if (deltas.length) await tx.execute(applyDeltasSql(1), deltaParams(deltas));
    },
  };
}

export type StockRepository = ReturnType<typeof stockRepository>;
