import type { Db, Tx } from '@cloudretail/db';
import { type OrderStatus, type OrderStatusRecord, stageOf } from '../domain/order-status';

interface Row {
  order_id: string;
  user_id: string;
  status: OrderStatus;
  reason: string | null;
  version: number;
  changed_at: Date;
}

const toRecord = (r: Row): OrderStatusRecord => ({
  orderId: r.order_id,
  userId: r.user_id,
  status: r.status,
  ...(r.reason ? { reason: r.reason } : {}),
  at: r.changed_at.toISOString(),
  version: r.version,
});

const COLUMNS = 'order_id, user_id, status, reason, version, changed_at';

/**
 * First key of the advisory locks on orders (the two-key form: a key space of its own, apart from
 * the migrations' one-key lock); the second key is a hash of the order id.
 */
const ORDER_LOCK_CLASS = 1;

export interface StatusChange {
  orderId: string;
  userId: string;
  status: OrderStatus;
  reason?: string;
  at: string;
}

/** The latest status per order, as plain records. */
export function orderStatusRepository(db: Db) {
  const find = async (orderId: string, tx?: Tx): Promise<OrderStatusRecord | null> => {
    const [row] = await (tx ?? db).query<Row>(`SELECT ${COLUMNS} FROM order_status WHERE order_id = $1`, [orderId]);
    return row ? toRecord(row) : null;
  };

  return {
    find,

    /**
     * Locks these orders until the transaction ends, in one fixed order and whether or not their
     * rows exist yet: two replicas' batches touching the same orders then wait for each other
     * instead of deadlocking (one replica's batch may insert an order the other's goes on to update).
     */
    async lockOrders(orderIds: string[], tx: Tx): Promise<void> {
      // A volatile output expression is evaluated in ORDER BY order (Postgres 9.6+).
      await tx.query('SELECT pg_advisory_xact_lock($1, k) FROM (SELECT DISTINCT hashtext(id) AS k FROM unnest($2::text[]) AS id) keys ORDER BY k', [ORDER_LOCK_CLASS, orderIds]);
    },

    /**
     * Stores the change when it moves the order forward (a later stage) and bumps the version;
     * otherwise leaves the row as it is. Resolves the order's record either way.
     */
    async advance(change: StatusChange, tx: Tx): Promise<{ record: OrderStatusRecord; applied: boolean }> {
      const [applied] = await tx.query<Row>(
        `INSERT INTO order_status (order_id, user_id, status, stage, reason, version, changed_at)
         VALUES ($1, $2, $3, $4, $5, 1, $6)
         ON CONFLICT (order_id) DO UPDATE
           SET status = EXCLUDED.status, stage = EXCLUDED.stage, reason = EXCLUDED.reason,
               version = order_status.version + 1, changed_at = EXCLUDED.changed_at
           WHERE order_status.stage < EXCLUDED.stage
         RETURNING ${COLUMNS}`,
        [change.orderId, change.userId, change.status, stageOf(change.status), change.reason ?? null, change.at],
      );
      if (applied) return { record: toRecord(applied), applied: true };
      const current = await find(change.orderId, tx);
      if (!current) throw new Error(`order_status row of ${change.orderId} vanished`);
      return { record: current, applied: false };
    },
  };
}

export type OrderStatusRepository = ReturnType<typeof orderStatusRepository>;
