import { QueryTypes, type Sequelize, type Transaction } from '@cloudretail/db';
import type { Reservation, ReservationItem, ReservationStatus } from '../domain/inventory';

interface Row {
  order_id: string;
  status: ReservationStatus;
  expires_at: Date;
  items: ReservationItem[];
}

/** Reservations with their items, as plain records. */
export function reservationRepository(sequelize: Sequelize) {
  const query = <T extends object>(sql: string, bind: unknown[], transaction?: Transaction) =>
    sequelize.query<T>(sql, { bind, type: QueryTypes.SELECT, transaction });

  return {
    /**
     * Claims `orderId` for a new reservation; false when it already exists. A concurrent claim
     * of the same id waits on the primary key until this transaction ends, which is what makes
     * duplicate calls safe: the loser then sees the winner's reservation (or, if the winner
     * rolled back or removed it, claims the id itself). Resolves the new reservation's expiry.
     */
    async claim(orderId: string, ttlMs: number, transaction: Transaction): Promise<{ expiresAt: string } | null> {
      const [row] = await query<{ expires_at: Date }>(
        `INSERT INTO reservations (order_id, status, expires_at) VALUES ($1, 'RESERVED', now() + $2 * interval '1 millisecond')
         ON CONFLICT (order_id) DO NOTHING RETURNING expires_at`,
        [orderId, ttlMs],
        transaction,
      );
      return row ? { expiresAt: row.expires_at.toISOString() } : null;
    },

    async addItems(orderId: string, items: ReservationItem[], transaction: Transaction): Promise<void> {
      await query(
        'INSERT INTO reservation_items (order_id, product_id, quantity) SELECT $1, * FROM unnest($2::uuid[], $3::int[]) RETURNING order_id',
        [orderId, items.map((i) => i.productId), items.map((i) => i.quantity)],
        transaction,
      );
    },

    /** The reservation with its items (one query), or null; `lock` holds its row until the transaction ends. */
    async find(orderId: string, { transaction, lock = false }: { transaction?: Transaction; lock?: boolean } = {}): Promise<Reservation | null> {
      const [row] = await query<Row>(
        `SELECT order_id, status, expires_at,
           (SELECT coalesce(json_agg(json_build_object('productId', i.product_id, 'quantity', i.quantity) ORDER BY i.product_id), '[]')
            FROM reservation_items i WHERE i.order_id = r.order_id) AS items
         FROM reservations r WHERE order_id = $1${lock ? ' FOR UPDATE' : ''}`,
        [orderId],
        transaction,
      );
      return row ? { orderId: row.order_id, status: row.status, items: row.items, expiresAt: row.expires_at.toISOString() } : null;
    },

    async setStatus(orderId: string, status: ReservationStatus, transaction: Transaction, releaseReason: string | null = null): Promise<void> {
      await sequelize.query('UPDATE reservations SET status = $2, release_reason = $3, updated_at = now() WHERE order_id = $1', {
        bind: [orderId, status, releaseReason],
        transaction,
      });
    },

    /** Why a released reservation was released (`expired` when the sweeper did it), or null. */
    async releaseReasonOf(orderId: string, transaction: Transaction): Promise<string | null> {
      const [row] = await query<{ release_reason: string | null }>('SELECT release_reason FROM reservations WHERE order_id = $1', [orderId], transaction);
      return row?.release_reason ?? null;
    },

    /** Gives the id back after a failed attempt, so a later retry can reserve it. */
    async remove(orderId: string, transaction: Transaction): Promise<void> {
      await sequelize.query('DELETE FROM reservations WHERE order_id = $1', { bind: [orderId], transaction });
    },

    /**
     * Locks one expired, still-held reservation. SKIP LOCKED lets every replica's sweeper work at
     * once without waiting on each other or on a commit/release in progress.
     */
    async lockNextExpired(transaction: Transaction): Promise<string | null> {
      const [row] = await query<{ order_id: string }>(
        `SELECT order_id FROM reservations WHERE status = 'RESERVED' AND expires_at <= now()
         ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [],
        transaction,
      );
      return row?.order_id ?? null;
    },
  };
}

export type ReservationRepository = ReturnType<typeof reservationRepository>;
