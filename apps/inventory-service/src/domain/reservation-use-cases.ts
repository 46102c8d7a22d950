import { AppError, conflict, notFound } from '@cloudretail/errors';
import type { Sequelize, Transaction } from '@cloudretail/db';
import { type EventEnvelope, createEvent, enqueue } from '@cloudretail/events';
import type { ReservationRepository } from '../data-access/reservation-repository';
import type { StockRepository } from '../data-access/stock-repository';
import type { Reservation, ReservationItem, Shortage, StockLevel } from './inventory';
import { dropsBelowThreshold, normalizeItems, sameItems } from './stock-policy';

interface Deps {
  sequelize: Sequelize;
  stock: StockRepository;
  reservations: ReservationRepository;
  reservationTtlMs: number;
  lowStockThreshold: number;
}

export type ReserveResult =
  | { outcome: 'reserved'; reservation: Reservation }
  | { outcome: 'already_reserved'; reservation: Reservation }
  | { outcome: 'out_of_stock'; shortages: Shortage[] };

/**
 * Stock reservations for the checkout saga: reserve all of an order's items or none, then commit
 * (sold) or release (back on sale). Correctness lives in Postgres, not in this process, because
 * several replicas run: each operation is one transaction that locks the reservation row and the
 * stock rows (in product_id order), and the stock table's CHECK forbids negative numbers.
 * Every operation is idempotent per orderId, so retried messages and requests are harmless.
 */
export function reservationUseCases({ sequelize, stock, reservations, reservationTtlMs, lowStockThreshold }: Deps) {
  const productIds = (items: ReservationItem[]) => items.map((i) => i.productId);
  /** Runs `fn` in the caller's transaction (the event consumer's inbox transaction), or in a new one. */
  const within = <T>(transaction: Transaction | undefined, fn: (t: Transaction) => Promise<T>) => (transaction ? fn(transaction) : sequelize.transaction(fn));

  async function mustFind(orderId: string, transaction: Transaction, lock = false): Promise<Reservation> {
    const reservation = await reservations.find(orderId, { transaction, lock });
    if (!reservation) throw notFound('Reservation');
    return reservation;
  }

  function assertSameItems(existing: Reservation, items: ReservationItem[]): void {
    if (!sameItems(existing.items, items)) throw conflict(`Order ${existing.orderId} already has a reservation with different items`);
  }

  function shortagesOf(items: ReservationItem[], levels: Map<string, StockLevel>): Shortage[] {
    return items
      .map((i) => ({ productId: i.productId, requested: i.quantity, available: levels.get(i.productId)?.available ?? 0, reason: 'out_of_stock' as const }))
      .filter((s) => s.available < s.requested);
  }

  function lowStockEvents(items: ReservationItem[], levels: Map<string, StockLevel>): EventEnvelope[] {
    return items.flatMap(({ productId, quantity }) => {
      const before = levels.get(productId)?.available ?? 0;
      const after = before - quantity;
      return dropsBelowThreshold(before, after, lowStockThreshold) ? [createEvent('LowStock', productId, { productId, available: after, threshold: lowStockThreshold })] : [];
    });
  }

  async function markCommitted(reservation: Reservation, extra: EventEnvelope[], t: Transaction): Promise<Reservation> {
    await reservations.setStatus(reservation.orderId, 'COMMITTED', t);
    await enqueue(sequelize, t, [createEvent('StockCommitted', reservation.orderId, { orderId: reservation.orderId, items: reservation.items }), ...extra]);
    return { ...reservation, status: 'COMMITTED' };
  }

  /** A commit after the reservation expired: the units are sold from `available` if all are there (all or nothing). */
  async function recommitExpired(reservation: Reservation, t: Transaction): Promise<Reservation> {
    const { orderId, items } = reservation;
    if ((await reservations.releaseReasonOf(orderId, t)) !== 'expired') throw conflict(`The reservation of order ${orderId} was released and cannot be committed`);
    const levels = await stock.lock(productIds(items), t);
    const shortages = shortagesOf(items, levels);
    if (shortages.length) throw new AppError('conflict', `The reservation of order ${orderId} expired and its stock has been sold since`, shortages);
    await stock.adjust(items.map((i) => ({ productId: i.productId, available: -i.quantity, reserved: 0 })), t);
    return markCommitted(reservation, lowStockEvents(items, levels), t);
  }

  /** Puts a held reservation's units back on sale. The caller holds the reservation's row lock. */
  async function releaseHeld(reservation: Reservation, reason: string, t: Transaction): Promise<Reservation> {
    await stock.lock(productIds(reservation.items), t);
    await stock.adjust(reservation.items.map((i) => ({ productId: i.productId, available: i.quantity, reserved: -i.quantity })), t);
    await reservations.setStatus(reservation.orderId, 'RELEASED', t, reason);
    await enqueue(sequelize, t, [createEvent('StockReleased', reservation.orderId, { orderId: reservation.orderId, items: reservation.items, reason })]);
    return { ...reservation, status: 'RELEASED' };
  }

  /**
   * The units are sold: they leave `reserved` for good. Committing twice is a no-op.
   * A reservation the sweeper released because it expired (the payment came late) is sold from
   * `available` instead, in the same transaction, when every unit is still there; otherwise a 409
   * listing the short products. Any other released reservation is a 409. The sweeper and this
   * lock the same reservation row, so expiry and commit never interleave: the units end either
   * sold or on sale, never both. Errors are thrown before the first write.
   */
  async function commit(orderIdInput: string, transaction?: Transaction): Promise<Reservation> {
    const orderId = orderIdInput.toLowerCase();
    return within(transaction, async (t) => {
      const reservation = await mustFind(orderId, t, true);
      if (reservation.status === 'COMMITTED') return reservation;
      if (reservation.status === 'RELEASED') return recommitExpired(reservation, t);
      await stock.lock(productIds(reservation.items), t);
      await stock.adjust(reservation.items.map((i) => ({ productId: i.productId, available: 0, reserved: -i.quantity })), t);
      return markCommitted(reservation, [], t);
    });
  }

  return {
    /**
     * Holds stock for every item of an order, or for none of them. A repeat with the same
     * orderId (even concurrently) returns the existing reservation and moves no stock.
     * Out of stock is an outcome, not an error: StockReservationFailed is recorded and the
     * orderId stays free, so a later retry after a restock can still succeed.
     * `transaction`: the caller's (the consumer's inbox transaction), so outcome and inbox row commit once.
     * Every error is thrown before the first write, so a caller that swallows a 404/409 commits nothing half-done.
     */
    async reserve(orderIdInput: string, requested: ReservationItem[], transaction?: Transaction): Promise<ReserveResult> {
      const orderId = orderIdInput.toLowerCase();
      const items = normalizeItems(requested);
      return within(transaction, async (t): Promise<ReserveResult> => {
        const claimed = await reservations.claim(orderId, reservationTtlMs, t);
        if (!claimed) {
          const existing = await mustFind(orderId, t);
          assertSameItems(existing, items);
          return { outcome: 'already_reserved', reservation: existing };
        }
        const levels = await stock.lock(productIds(items), t);
        const shortages = shortagesOf(items, levels);
        if (shortages.length) {
          await reservations.remove(orderId, t);
          await enqueue(sequelize, t, [createEvent('StockReservationFailed', orderId, { orderId, reason: 'out_of_stock', productIds: shortages.map((s) => s.productId) })]);
          return { outcome: 'out_of_stock', shortages };
        }
        await stock.adjust(items.map((i) => ({ productId: i.productId, available: -i.quantity, reserved: i.quantity })), t);
        await reservations.addItems(orderId, items, t);
        await enqueue(sequelize, t, [createEvent('StockReserved', orderId, { orderId, items }), ...lowStockEvents(items, levels)]);
        return { outcome: 'reserved', reservation: { orderId, status: 'RESERVED', items, expiresAt: claimed.expiresAt } };
      });
    },

    commit,

    /**
     * The saga's commit (OrderConfirmed): like `commit`, but when the units cannot be sold the
     * fact is recorded as StockCommitFailed, so order-service refunds and cancels the order
     * instead of leaving it CONFIRMED with nothing sold.
     */
    async commitForOrder(orderIdInput: string, transaction: Transaction): Promise<'committed' | 'failed'> {
      const orderId = orderIdInput.toLowerCase();
      try {
        await commit(orderId, transaction);
        return 'committed';
      } catch (error) {
        if (!(error instanceof AppError) || !['conflict', 'not_found'].includes(error.code)) throw error;
        const shortages = (error.details ?? []) as Partial<Shortage>[];
        const reason = error.code === 'not_found' ? 'not_reserved' : shortages.length ? 'out_of_stock' : 'released';
        const productIds = shortages.flatMap((s) => (s.productId ? [s.productId] : []));
        await enqueue(sequelize, transaction, [createEvent('StockCommitFailed', orderId, { orderId, reason, productIds })]);
        return 'failed';
      }
    },

    /** Reserved units go back on sale. Releasing twice is a no-op; a committed (sold) reservation is a 409. */
    async release(orderIdInput: string, reason: string, transaction?: Transaction): Promise<Reservation> {
      const orderId = orderIdInput.toLowerCase();
      return within(transaction, async (t) => {
        const reservation = await mustFind(orderId, t, true);
        if (reservation.status === 'RELEASED') return reservation;
        if (reservation.status === 'COMMITTED') throw conflict(`The reservation of order ${orderId} was committed and cannot be released`);
        return releaseHeld(reservation, reason, t);
      });
    },

    async getReservation(orderId: string): Promise<Reservation> {
      const reservation = await reservations.find(orderId.toLowerCase());
      if (!reservation) throw notFound('Reservation');
      return reservation;
    },

    /**
     * Releases up to `limit` reservations past their expiry, one transaction each, so a failure
     * or a slow one never holds the others' locks. Resolves with how many were released.
     */
    async releaseExpired(limit = 100): Promise<number> {
      let released = 0;
      while (released < limit) {
        const done = await sequelize.transaction(async (t) => {
          const orderId = await reservations.lockNextExpired(t);
          if (!orderId) return false;
          await releaseHeld(await mustFind(orderId, t), 'expired', t);
          return true;
        });
        if (!done) break;
        released += 1;
      }
      return released;
    },
  };
}

export type ReservationUseCases = ReturnType<typeof reservationUseCases>;
