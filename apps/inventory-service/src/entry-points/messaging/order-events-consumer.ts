import type { Db, Tx } from '@cloudretail/db';
import { AppError } from '@cloudretail/errors';
import { type EventEnvelope, type EventOf, type EventType, type PayloadOf, type Transport, startConsumer } from '@cloudretail/events';
import type { Logger } from '@cloudretail/logging';
import type { Closer } from '@cloudretail/shutdown';
import type { PaymentRequest, ReservationUseCases } from '../../domain/reservation-use-cases';
import type { StockReturnUseCase } from '../../domain/stock-return-use-case';

export const CONSUMER_GROUP = 'inventory-service';

interface Deps {
  transport: Transport;
  db: Db;
  reservations: ReservationUseCases;
  returns: StockReturnUseCase;
  logger: Logger;
}

/** The payment OrderPlaced asks for, passed on in StockReserved; none from an older order-service. */
function paymentOf({ paymentId, paymentToken, userId, totalCents, currency }: PayloadOf<'OrderPlaced'>): PaymentRequest | undefined {
  return paymentId && paymentToken ? { paymentId, userId, paymentToken, amountCents: totalCents, currency } : undefined;
}

/**
 * The saga's stock step: OrderPlaced → reserve (StockReserved / StockReservationFailed),
 * OrderConfirmed → commit (StockCommitted, or StockCommitFailed when the units cannot be sold),
 * OrderCancelled → release, OrderRefunded → return the sold units.
 *
 * A read batch is handled in one transaction (startConsumer): first every reservation and stock
 * row it will lock is locked in a fixed order (`prepare`), then each event's domain operation
 * (told the stock rows are held, so it does not lock them again); the stock changes, their outbox
 * events and the inbox rows commit once. A 404/409 from the domain
 * is a fact about the order (nothing to release, already released…), not a failure: the domain
 * throws it before writing anything, it is logged and the event is done, and the rest of the
 * batch goes on. Anything else rolls the batch back; its events are then retried one by one and a
 * poison one is dead-lettered (`dlq.inventory-service`).
 */
export function startOrderEventsConsumer({ transport, db, reservations, returns, logger }: Deps): Promise<Closer> {
  const settled =
    <T extends EventType>(operation: (payload: PayloadOf<T>, tx: Tx) => Promise<unknown>) =>
    async (payload: PayloadOf<T>, tx: Tx, event: EventOf<T>): Promise<void> => {
      try {
        await operation(payload, tx);
      } catch (error) {
        if (!(error instanceof AppError) || !['not_found', 'conflict'].includes(error.code)) throw error;
        logger.warn({ eventId: event.id, type: event.type, orderId: event.aggregateId, reason: error.message }, 'order event left stock unchanged');
      }
    };

  // A batch of one event needs no up-front locks: its handler takes them itself, in the same order.
  const prepared = new WeakSet<Tx>();
  const prepare = async (events: EventEnvelope[], tx: Tx) => {
    if (events.length < 2) return;
    await reservations.lockForBatch(rowsOf(events), tx);
    prepared.add(tx);
  };
  const inBatch = (tx: Tx) => ({ tx, stockLocked: prepared.has(tx) });

  return startConsumer({
    transport,
    db,
    group: CONSUMER_GROUP,
    prepare,
    handlers: {
      OrderPlaced: settled<'OrderPlaced'>((p, tx) =>
        reservations.reserve(p.orderId, p.items.map(({ productId, quantity }) => ({ productId, quantity })), { ...inBatch(tx), payment: paymentOf(p) }),
      ),
      OrderConfirmed: settled<'OrderConfirmed'>((p, tx) => reservations.commitForOrder(p.orderId, inBatch(tx))),
      OrderCancelled: settled<'OrderCancelled'>((p, tx) => reservations.release(p.orderId, p.reason, inBatch(tx))),
      OrderRefunded: settled<'OrderRefunded'>((p, tx) => returns.returnStock(p.orderId, tx)),
    },
  });
}

/**
 * What a batch will lock: the products OrderPlaced reserves (from the payload), and the orders
 * whose existing reservation the other events settle (their products are read from the
 * reservation's items when they are locked: those, not the event's copy, are what moves).
 */
function rowsOf(events: EventEnvelope[]): { orderIds: string[]; productIds: string[] } {
  const orderIds: string[] = [];
  const productIds: string[] = [];
  for (const { type, payload } of events) {
    if (type === 'OrderPlaced') productIds.push(...(payload as PayloadOf<'OrderPlaced'>).items.map((i) => i.productId));
    else orderIds.push((payload as { orderId: string }).orderId);
  }
  return { orderIds, productIds };
}
