import type { Sequelize } from '@cloudretail/db';
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
 * OrderConfirmed → commit, OrderCancelled → release, OrderRefunded → return the sold units.
 *
 * The domain operations run in their own transactions and are idempotent per orderId; the inbox
 * row (handleOnce) is what makes a redelivered event a no-op, and if the process dies between
 * the two commits, the redelivery meets an operation that has already happened and changes
 * nothing. A 404/409 from the domain is a fact about the order (nothing to release, already
 * released…), not a failure: it is logged and the event is done. Anything else is retried by the
 * transport, then dead-lettered (`dlq.inventory-service`).
 */
export async function startOrderEventsConsumer({ transport, sequelize, reservations, returns, logger }: Deps): Promise<Closer> {
  const settled = async (event: EventEnvelope, operation: () => Promise<unknown>) => {
    try {
      await operation();
    } catch (error) {
      if (!(error instanceof AppError) || !['not_found', 'conflict'].includes(error.code)) throw error;
      logger.warn({ eventId: event.id, type: event.type, orderId: event.aggregateId, reason: error.message }, 'order event left stock unchanged');
    }
  };

  const operations: Record<string, (event: EventEnvelope) => Promise<unknown>> = {
    OrderPlaced: ({ payload }) => {
      const { orderId, items } = payload as PayloadOf<'OrderPlaced'>;
      return reservations.reserve(orderId, items.map(({ productId, quantity }) => ({ productId, quantity })));
    },
    OrderConfirmed: ({ payload }) => reservations.commit((payload as PayloadOf<'OrderConfirmed'>).orderId),
    OrderCancelled: ({ payload }) => {
      const { orderId, reason } = payload as PayloadOf<'OrderCancelled'>;
      return reservations.release(orderId, reason);
    },
    OrderRefunded: ({ payload }) => returns.returnStock((payload as PayloadOf<'OrderRefunded'>).orderId),
  };

  const handle = async (event: EventEnvelope) => {
    const operation = operations[event.type];
    if (!operation) return; // PaymentRequested, OrderStatusChanged: not about stock
    await handleOnce(sequelize, CONSUMER_GROUP, event, () => settled(event, () => operation(event)));
  };
  const subscription = await transport.subscribe({ group: CONSUMER_GROUP, topics: ['orders'], handle });
  return { name: 'order-events-consumer', close: () => subscription.stop() };
}
