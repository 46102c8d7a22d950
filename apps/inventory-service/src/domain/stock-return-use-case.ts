import type { Sequelize, Transaction } from '@cloudretail/db';
import { conflict } from '@cloudretail/errors';
import { createEvent, enqueue } from '@cloudretail/events';
import type { ReservationRepository } from '../data-access/reservation-repository';
import type { StockRepository } from '../data-access/stock-repository';
import type { StockReturnRepository } from '../data-access/stock-return-repository';

interface Deps {
  sequelize: Sequelize;
  stock: StockRepository;
  reservations: ReservationRepository;
  returns: StockReturnRepository;
}

export type ReturnResult = 'returned' | 'already_returned' | 'nothing_sold';

/**
 * A refunded order's sold units go back on sale. The reservation stays COMMITTED (it was sold);
 * a `stock_returns` row records the return, so returning twice moves nothing the second time.
 */
export function stockReturnUseCase({ sequelize, stock, reservations, returns }: Deps) {
  return {
    /** `transaction`: the caller's (the consumer's inbox transaction), or a new one. The 409 is thrown before any write. */
    async returnStock(orderIdInput: string, transaction?: Transaction): Promise<ReturnResult> {
      const orderId = orderIdInput.toLowerCase();
      const run = (fn: (t: Transaction) => Promise<ReturnResult>) => (transaction ? fn(transaction) : sequelize.transaction(fn));
      return run(async (t): Promise<ReturnResult> => {
        const reservation = await reservations.find(orderId, { transaction: t, lock: true });
        if (!reservation || reservation.status === 'RELEASED') return 'nothing_sold';
        if (reservation.status !== 'COMMITTED') throw conflict(`The reservation of order ${orderId} is ${reservation.status}; only sold units can be returned`);
        if (!(await returns.claim(orderId, t))) return 'already_returned';
        await stock.lock(reservation.items.map((i) => i.productId), t);
        await stock.adjust(reservation.items.map((i) => ({ productId: i.productId, available: i.quantity, reserved: 0 })), t);
        await enqueue(sequelize, t, [createEvent('StockReturned', orderId, { orderId, items: reservation.items })]);
        return 'returned';
      });
    },
  };
}

export type StockReturnUseCase = ReturnType<typeof stockReturnUseCase>;
