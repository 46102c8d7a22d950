import { QueryTypes, type Sequelize } from '@cloudretail/db';
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

export interface StatusChange {
  orderId: string;
  userId: string;
  status: OrderStatus;
  reason?: string;
  at: string;
}

/** The latest status per order, as plain records. */
export function orderStatusRepository(sequelize: Sequelize) {
  const select = async (sql: string, bind: unknown[]) => (await sequelize.query<Row>(sql, { bind, type: QueryTypes.SELECT })).map(toRecord);

  const find = async (orderId: string): Promise<OrderStatusRecord | null> =>
    (await select(`SELECT ${COLUMNS} FROM order_status WHERE order_id = $1`, [orderId]))[0] ?? null;

  return {
    find,

    /**
     * Stores the change when it moves the order forward (a later stage) and bumps the version.
     * One statement, so two replicas handling changes of one order cannot interleave.
     */
    async advance(change: StatusChange): Promise<{ record: OrderStatusRecord; applied: boolean }> {
      const [applied] = await select(
        `INSERT INTO order_status (order_id, user_id, status, stage, reason, version, changed_at)
         VALUES ($1, $2, $3, $4, $5, 1, $6)
         ON CONFLICT (order_id) DO UPDATE
           SET status = EXCLUDED.status, stage = EXCLUDED.stage, reason = EXCLUDED.reason,
               version = order_status.version + 1, changed_at = EXCLUDED.changed_at
           WHERE order_status.stage < EXCLUDED.stage
         RETURNING ${COLUMNS}`,
        [change.orderId, change.userId, change.status, stageOf(change.status), change.reason ?? null, change.at],
      );
      if (applied) return { record: applied, applied: true };
      const current = await find(change.orderId);
      if (!current) throw new Error(`order_status row of ${change.orderId} vanished`);
      return { record: current, applied: false };
    },
  };
}

export type OrderStatusRepository = ReturnType<typeof orderStatusRepository>;
