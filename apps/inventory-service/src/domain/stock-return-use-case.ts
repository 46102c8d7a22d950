import type { Db, Tx } from '@cloudretail/db';
import { conflict } from '@cloudretail/errors';
import { createEvent, enqueue } from '@cloudretail/events';
import type { ReservationRepository } from '../data-access/reservation-repository';
import type { StockRepository } from '../data-access/stock-repository';
import type { StockReturnRepository } from '../data-access/stock-return-repository';

interface Deps {
  db: Db;
  stock: StockRepository;
  reservations: ReservationRepository;
  returns: StockReturnRepository;
}

export type ReturnResult = 'returned' | 'already_returned' | 'nothing_sold';

/**
 * A refunded order's sold units go back on sale. The reservation stays COMMITTED (it was sold);
 * a `stock_returns` row records the return, so returning twice moves nothing the second time.
 */
export function stockReturnUseCase({ db, stock, reservations, returns }: Deps) {
  return {
    /** `tx`: the caller's (the consumer's batch), or a new one. The 409 is thrown before any write. */
    async returnStock(orderIdInput: string, tx?: Tx): Promise<ReturnResult> {
      const orderId = orderIdInput.toLowerCase();
      const run = (fn: (tx: Tx) => Promise<ReturnResult>) => (tx ? fn(tx) : db.transaction(fn));
      return run(async (tx): Promise<ReturnResult> => {
        const reservation = await reservations.find(orderId, { tx, lock: true });
        if (!reservation || reservation.status === 'RELEASED') return 'nothing_sold';
        if (reservation.status !== 'COMMITTED') throw conflict(`The reservation of order ${orderId} is ${reservation.status}; only sold units can be returned`);
        if (!(await returns.claim(orderId, tx))) return 'already_returned';
        await stock.lock(reservation.items.map((i) => i.productId), tx);
        await stock.adjust(reservation.items.map((i) => ({ productId: i.productId, available: i.quantity, reserved: 0 })), tx);
        enqueue(tx, [createEvent('StockReturned', orderId, { orderId, items: reservation.items })]);
        return 'returned';
      });
    },
  };
}

export type StockReturnUseCase = ReturnType<typeof stockReturnUseCase>;
