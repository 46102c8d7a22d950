import type { Sequelize, Transaction } from '@cloudretail/db';
import { AppError } from '@cloudretail/errors';
import { type EventEnvelope, type PayloadOf, type Transport, handleOnce } from '@cloudretail/events';
import type { Logger } from '@cloudretail/logging';
import type { Closer } from '@cloudretail/shutdown';
import type { ReservationUseCases } from '../../domain/reservation-use-cases';
import type { StockReturnUseCase } from '../../domain/stock-return-use-case';

export const CONSUMER_GROUP = 'inventory-service';

interface Deps {
  transport: Transport;
  sequelize: Sequelize;
  reservations: ReservationUseCases;
  returns: StockReturnUseCase;
  logger: Logger;
}

/**
 * The saga's stock step: OrderPlaced → reserve (StockReserved / StockReservationFailed),
 * OrderConfirmed → commit (StockCommitted, or StockCommitFailed when the units cannot be sold),
 * OrderCancelled → release, OrderRefunded → return the sold units.
 *
 * The domain operations run inside the inbox transaction (handleOnce), so the stock change, its
 * outbox events and the inbox row commit once: a redelivered event is a no-op, and a crash leaves
 * either all of it or nothing. A 404/409 from the domain is a fact about the order (nothing to
 * release, already released…), not a failure: the domain throws it before writing anything, it
 * is logged and the event is done. Anything else is retried by the
 * transport, then dead-lettered (`dlq.inventory-service`).
 */
export async function startOrderEventsConsumer({ transport, sequelize, reservations, returns, logger }: Deps): Promise<Closer> {
  const settled = async (event: EventEnvelope, operation: () => Promise<unknown>): Promise<void> => {
    try {
      await operation();
    } catch (error) {
      if (!(error instanceof AppError) || !['not_found', 'conflict'].includes(error.code)) throw error;
      logger.warn({ eventId: event.id, type: event.type, orderId: event.aggregateId, reason: error.message }, 'order event left stock unchanged');
    }
  };

  const operations: Record<string, (event: EventEnvelope, t: Transaction) => Promise<unknown>> = {
    OrderPlaced: ({ payload }, t) => {
      const { orderId, items } = payload as PayloadOf<'OrderPlaced'>;
      return reservations.reserve(orderId, items.map(({ productId, quantity }) => ({ productId, quantity })), t);
    },
    OrderConfirmed: ({ payload }, t) => reservations.commitForOrder((payload as PayloadOf<'OrderConfirmed'>).orderId, t),
    OrderCancelled: ({ payload }, t) => {
      const { orderId, reason } = payload as PayloadOf<'OrderCancelled'>;
      return reservations.release(orderId, reason, t);
    },
    OrderRefunded: ({ payload }, t) => returns.returnStock((payload as PayloadOf<'OrderRefunded'>).orderId, t),
  };

  const handle = async (event: EventEnvelope) => {
    const operation = operations[event.type];
    if (!operation) return; // PaymentRequested, OrderStatusChanged: not about stock
    await handleOnce(sequelize, CONSUMER_GROUP, event, (t) => settled(event, () => operation(event, t)));
  };
  const subscription = await transport.subscribe({ group: CONSUMER_GROUP, topics: ['orders'], handle });
  return { name: 'order-events-consumer', close: () => subscription.stop() };
}
