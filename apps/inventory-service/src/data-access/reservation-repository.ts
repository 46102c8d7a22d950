import type { Db, Tx } from '@cloudretail/db';
import type { Reservation, ReservationItem, ReservationStatus, StockLevel } from '../domain/inventory';
import { type StockDelta, type StockRow, applyDeltasSql, deltaParams, toStock } from './stock-repository';

interface Row {
  order_id: string;
  status: ReservationStatus;
  expires_at: Date;
  items: ReservationItem[];
}

/** A reservation's columns with its items, in one row. */
const WITH_ITEMS = `order_id, status, expires_at,
  (SELECT coalesce(json_agg(json_build_object('productId', i.product_id, 'quantity', i.quantity) ORDER BY i.product_id), '[]')
   FROM reservation_items i WHERE i.order_id = r.order_id) AS items`;

const toReservation = (row: Row): Reservation => ({ orderId: row.order_id, status: row.status, items: row.items, expiresAt: row.expires_at.toISOString() });

/** Reservations with their items, as plain records; reads take the caller's transaction when it has one. */
export function reservationRepository(db: Db) {
  return {
    /**
     * Holds every unit of `items` for a new reservation of `orderId`, in one statement: the
     * reservation, its items and the move from available to reserved, written only when every
     * unit is on sale and the id is free (else nothing at all). Resolves the stock levels as they
     * were (for shortages and LowStock) and the new reservation's expiry, or null when nothing was
     * written. The caller holds the stock rows, locked by an earlier statement, so the check and
     * the move see the same numbers; the stock CHECK is the backstop. A concurrent claim of the
     * same id waits on the primary key until the other transaction ends, then sees its reservation.
     */
    async hold(orderId: string, items: ReservationItem[], ttlMs: number, tx: Tx): Promise<{ levels: Map<string, StockLevel>; expiresAt: string | null }> {
      const rows = await tx.query<StockRow & { expires_at: Date | null }>(
        `WITH wanted AS (SELECT * FROM unnest($3::uuid[], $4::int[]) AS w (product_id, quantity)),
         claim AS (
           INSERT INTO reservations (order_id, status, expires_at)
           SELECT $1::uuid, 'RESERVED', now() + $2 * interval '1 millisecond'
           WHERE NOT EXISTS (SELECT 1 FROM wanted w LEFT JOIN stock s USING (product_id) WHERE coalesce(s.available, 0) < w.quantity)
           ON CONFLICT (order_id) DO NOTHING RETURNING order_id, expires_at
         ), items AS (
           INSERT INTO reservation_items (order_id, product_id, quantity) SELECT claim.order_id, w.product_id, w.quantity FROM claim, wanted w
         ), held AS (
           UPDATE stock s SET available = s.available - w.quantity, reserved = s.reserved + w.quantity, updated_at = now()
           FROM claim, wanted w WHERE s.product_id = w.product_id
         )
         SELECT s.product_id, s.available, s.reserved, (SELECT expires_at FROM claim) AS expires_at FROM stock s JOIN wanted USING (product_id)`,
        [orderId, ttlMs, items.map((i) => i.productId), items.map((i) => i.quantity)],
      );
      return { levels: new Map(rows.map((r) => [r.product_id, toStock(r)])), expiresAt: rows[0]?.expires_at?.toISOString() ?? null };
    },

    /**
     * Claims `orderId` with no items; false when it is taken. As with `hold`, a concurrent claim
     * waits for the other transaction, so the loser sees the winner's reservation.
     */
    async claim(orderId: string, ttlMs: number, tx: Tx): Promise<boolean> {
      const rows = await tx.query(
        `INSERT INTO reservations (order_id, status, expires_at) VALUES ($1, 'RESERVED', now() + $2 * interval '1 millisecond')
         ON CONFLICT (order_id) DO NOTHING RETURNING order_id`,
        [orderId, ttlMs],
      );
      return rows.length === 1;
    },

    /** Gives a claimed id back, so a later retry can reserve it. */
    async remove(orderId: string, tx: Tx): Promise<void> {
      await tx.execute('DELETE FROM reservations WHERE order_id = $1', [orderId]);
    },

    /** The reservation with its items (one query), or null; `lock` holds its row until the transaction ends. */
    async find(orderId: string, { tx, lock = false }: { tx?: Tx; lock?: boolean } = {}): Promise<Reservation | null> {
      const [row] = await (tx ?? db).query<Row>(`SELECT ${WITH_ITEMS} FROM reservations r WHERE order_id = $1${lock ? ' FOR UPDATE' : ''}`, [orderId]);
      return row ? toReservation(row) : null;
    },

    /**
     * Locks the existing reservations of `orderIds`, in order_id order, and resolves the product ids
     * of their items (which never change once written).
     */
    async lockAll(orderIds: string[], tx: Tx): Promise<string[]> {
      const rows = await tx.query<{ product_ids: string[] }>(
        `SELECT (SELECT array_agg(i.product_id) FROM reservation_items i WHERE i.order_id = r.order_id) AS product_ids
         FROM reservations r WHERE r.order_id = ANY($1::uuid[]) ORDER BY r.order_id FOR UPDATE`,
        [orderIds],
      );
      return rows.flatMap((r) => r.product_ids ?? []);
    },

    /**
     * Sets the reservation's status (and why it was released) and applies `deltas` to stock, in one
     * statement. The caller holds the reservation's row and the stock rows.
     */
    async settle(orderId: string, status: ReservationStatus, deltas: StockDelta[], tx: Tx, releaseReason: string | null = null): Promise<void> {
      await tx.execute(
        `WITH moved AS (${applyDeltasSql(4)})
         UPDATE reservations SET status = $2, release_reason = $3, updated_at = now() WHERE order_id = $1`,
        [orderId, status, releaseReason, ...deltaParams(deltas)],
      );
    },

    /** Why a released reservation was released (`expired` when the sweeper did it), or null. */
    async releaseReasonOf(orderId: string, tx: Tx): Promise<string | null> {
      const [row] = await tx.query<{ release_reason: string | null }>('SELECT release_reason FROM reservations WHERE order_id = $1', [orderId]);
      return row?.release_reason ?? null;
    },

    /**
     * Locks one expired, still-held reservation and resolves it with its items. SKIP LOCKED lets
     * every replica's sweeper work at once without waiting on each other or on a commit/release in progress.
     */
    async lockNextExpired(tx: Tx): Promise<Reservation | null> {
      const [row] = await tx.query<Row>(
        `SELECT ${WITH_ITEMS} FROM reservations r WHERE status = 'RESERVED' AND expires_at <= now()
         ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
      );
      return row ? toReservation(row) : null;
    },
  };
}

export type ReservationRepository = ReturnType<typeof reservationRepository>;
