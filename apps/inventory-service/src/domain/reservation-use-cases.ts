import { AppError, conflict, notFound } from '@cloudretail/errors';
import type { Db, Tx } from '@cloudretail/db';
import { type EventEnvelope, type PayloadOf, createEvent, enqueue } from '@cloudretail/events';
import type { ReservationRepository } from '../data-access/reservation-repository';
import type { StockDelta, StockRepository } from '../data-access/stock-repository';
import type { Reservation, ReservationItem, Shortage, StockLevel } from './inventory';
import { dropsBelowThreshold, normalizeItems, sameItems } from './stock-policy';

interface Deps {
  db: Db;
  stock: StockRepository;
  reservations: ReservationRepository;
  reservationTtlMs: number;
  lowStockThreshold: number;
}

/** The payment an order asks for once its stock is held: it only travels on, in StockReserved (nothing of it is stored here). */
export type PaymentRequest = NonNullable<PayloadOf<'StockReserved'>['payment']>;
/**
 * Where an operation runs: in the caller's transaction `tx` (the consumer's batch), else in its own.
 * `stockLocked`: `tx` already holds the stock rows the operation touches (`lockForBatch`), so they
 * are not locked again (a statement less per event).
 */
export interface RunIn {
  tx?: Tx;
  stockLocked?: boolean;
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
 * Operations take the caller's transaction (the event consumer's batch) or open their own.
 */
export function reservationUseCases({ db, stock, reservations, reservationTtlMs, lowStockThreshold }: Deps) {
  const productIds = (items: ReservationItem[]) => items.map((i) => i.productId);
  const within = <T>({ tx }: RunIn, fn: (tx: Tx) => Promise<T>) => (tx ? fn(tx) : db.transaction(fn));
  const lockStock = async (items: ReservationItem[], tx: Tx, { stockLocked = false }: RunIn) => {
    if (!stockLocked) await stock.lock(productIds(items), tx);
  };

  async function mustFind(orderId: string, tx: Tx, lock = false): Promise<Reservation> {
    const reservation = await reservations.find(orderId, { tx, lock });
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

  /** An order that asked for more than is on sale: it gets no reservation, unless it has one already (a repeat). */
  async function refuse(orderId: string, items: ReservationItem[], shortages: Shortage[], tx: Tx): Promise<ReserveResult> {
    // The claim waits for a concurrent reservation of the same order, so a repeat is never told "out of stock".
    if (!(await reservations.claim(orderId, reservationTtlMs, tx))) return alreadyReserved(orderId, items, tx);
    await reservations.remove(orderId, tx);
    enqueue(tx, [createEvent('StockReservationFailed', orderId, { orderId, reason: 'out_of_stock', productIds: shortages.map((s) => s.productId) })]);
    return { outcome: 'out_of_stock', shortages };
  }

  async function alreadyReserved(orderId: string, items: ReservationItem[], tx: Tx): Promise<ReserveResult> {
    const existing = await mustFind(orderId, tx);
    assertSameItems(existing, items);
    return { outcome: 'already_reserved', reservation: existing };
  }

  async function markCommitted(reservation: Reservation, deltas: StockDelta[], extra: EventEnvelope[], tx: Tx): Promise<Reservation> {
    const { orderId, items } = reservation;
    await reservations.settle(orderId, 'COMMITTED', deltas, tx);
    enqueue(tx, [createEvent('StockCommitted', orderId, { orderId, items }), ...extra]);
    return { ...reservation, status: 'COMMITTED' };
  }

  /** A commit after the reservation expired: the units are sold from `available` if all are there (all or nothing). */
  async function recommitExpired(reservation: Reservation, tx: Tx): Promise<Reservation> {
    const { orderId, items } = reservation;
    if ((await reservations.releaseReasonOf(orderId, tx)) !== 'expired') throw conflict(`The reservation of order ${orderId} was released and cannot be committed`);
    const levels = await stock.lock(productIds(items), tx);
    const shortages = shortagesOf(items, levels);
    if (shortages.length) throw new AppError('conflict', `The reservation of order ${orderId} expired and its stock has been sold since`, shortages);
    return markCommitted(reservation, items.map((i) => ({ productId: i.productId, available: -i.quantity, reserved: 0 })), lowStockEvents(items, levels), tx);
  }

  /** Puts a held reservation's units back on sale. The caller holds the reservation's row lock. */
  async function releaseHeld(reservation: Reservation, reason: string, tx: Tx, runIn: RunIn): Promise<Reservation> {
    const { orderId, items } = reservation;
    await lockStock(items, tx, runIn);
    await reservations.settle(orderId, 'RELEASED', items.map((i) => ({ productId: i.productId, available: i.quantity, reserved: -i.quantity })), tx, reason);
    enqueue(tx, [createEvent('StockReleased', orderId, { orderId, items, reason })]);
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
  async function commit(orderIdInput: string, runIn: RunIn = {}): Promise<Reservation> {
    const orderId = orderIdInput.toLowerCase();
    return within(runIn, async (tx) => {
      const reservation = await mustFind(orderId, tx, true);
      if (reservation.status === 'COMMITTED') return reservation;
      if (reservation.status === 'RELEASED') return recommitExpired(reservation, tx);
      await lockStock(reservation.items, tx, runIn);
      return markCommitted(reservation, reservation.items.map((i) => ({ productId: i.productId, available: 0, reserved: -i.quantity })), [], tx);
    });
  }

  return {
    /**
     * Holds stock for every item of an order, or for none of them. A repeat with the same
     * orderId (even concurrently) returns the existing reservation and moves no stock.
     * Out of stock is an outcome, not an error: StockReservationFailed is recorded and the
     * orderId stays free, so a later retry after a restock can still succeed.
     * `payment` (the order's payment request, from OrderPlaced) travels on in StockReserved, so
     * payment-service captures straight from it.
     * In the caller's batch the outcome and the inbox row commit once. Every error is thrown
     * before the first write, so a caller that swallows a 404/409 commits nothing half-done.
     * One statement when the stock rows are locked already (`stockLocked`), else two.
     */
    async reserve(orderIdInput: string, requested: ReservationItem[], { payment, ...runIn }: RunIn & { payment?: PaymentRequest } = {}): Promise<ReserveResult> {
      const orderId = orderIdInput.toLowerCase();
      const items = normalizeItems(requested);
      return within(runIn, async (tx): Promise<ReserveResult> => {
        await lockStock(items, tx, runIn);
        const { levels, expiresAt } = await reservations.hold(orderId, items, reservationTtlMs, tx);
        const shortages = shortagesOf(items, levels);
        if (shortages.length) return refuse(orderId, items, shortages, tx);
        if (!expiresAt) return alreadyReserved(orderId, items, tx);
        enqueue(tx, [createEvent('StockReserved', orderId, { orderId, items, ...(payment ? { payment } : {}) }), ...lowStockEvents(items, levels)]);
        return { outcome: 'reserved', reservation: { orderId, status: 'RESERVED', items, expiresAt } };
      });
    },

    commit,

    /**
     * The saga's commit (OrderConfirmed): like `commit`, but when the units cannot be sold the
     * fact is recorded as StockCommitFailed, so order-service refunds and cancels the order
     * instead of leaving it CONFIRMED with nothing sold.
     */
    async commitForOrder(orderIdInput: string, runIn: RunIn & { tx: Tx }): Promise<'committed' | 'failed'> {
      const orderId = orderIdInput.toLowerCase();
      try {
        await commit(orderId, runIn);
        return 'committed';
      } catch (error) {
        if (!(error instanceof AppError) || !['conflict', 'not_found'].includes(error.code)) throw error;
        const shortages = (error.details ?? []) as Partial<Shortage>[];
        const reason = error.code === 'not_found' ? 'not_reserved' : shortages.length ? 'out_of_stock' : 'released';
        const productIds = shortages.flatMap((s) => (s.productId ? [s.productId] : []));
        enqueue(runIn.tx, [createEvent('StockCommitFailed', orderId, { orderId, reason, productIds })]);
        return 'failed';
      }
    },

    /** Reserved units go back on sale. Releasing twice is a no-op; a committed (sold) reservation is a 409. */
    async release(orderIdInput: string, reason: string, runIn: RunIn = {}): Promise<Reservation> {
      const orderId = orderIdInput.toLowerCase();
      return within(runIn, async (tx) => {
        const reservation = await mustFind(orderId, tx, true);
        if (reservation.status === 'RELEASED') return reservation;
        if (reservation.status === 'COMMITTED') throw conflict(`The reservation of order ${orderId} was committed and cannot be released`);
        return releaseHeld(reservation, reason, tx, runIn);
      });
    },

    /**
     * Locks, at the start of a consumer batch, every row its events will lock, in the order every
     * path takes them: the existing reservations of `orderIds` (order_id order), then the stock rows
     * of `productIds` and of those reservations' items (product_id order). Two replicas' batches,
     * the sweeper and the API then queue behind each other instead of deadlocking. The handlers
     * then pass `stockLocked`. A product missing from `productIds` (a reservation made elsewhere
     * since) is at worst locked later, out of order: a deadlock is retried, the CHECK still holds.
     */
    async lockForBatch({ orderIds, productIds }: { orderIds: string[]; productIds: string[] }, tx: Tx): Promise<void> {
      const ofReservations = orderIds.length ? await reservations.lockAll(orderIds.map((id) => id.toLowerCase()), tx) : [];
      const all = [...new Set([...productIds.map((id) => id.toLowerCase()), ...ofReservations])];
      if (all.length) await stock.lock(all, tx);
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
        const done = await db.transaction(async (tx) => {
          const reservation = await reservations.lockNextExpired(tx);
          if (!reservation) return false;
          await releaseHeld(reservation, 'expired', tx, {});
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
