import type { Sequelize, Transaction } from '@cloudretail/db';
import { type EventEnvelope, type Transport, handleOnce } from '@cloudretail/events';
import type { Closer } from '@cloudretail/shutdown';
import type { SagaUseCases } from '../../domain/saga-use-cases';

export const CONSUMER_GROUP = 'order-service';

/**
 * The orchestrator's inbox: inventory and payment facts move orders on. Each event is handled
 * once per group (the inbox row commits with the order change and its outbox events); a handler
 * error is retried by the transport, then dead-lettered (`dlq.order-service`).
 */
export async function startSagaConsumer({ transport, sequelize, saga }: { transport: Transport; sequelize: Sequelize; saga: SagaUseCases }): Promise<Closer> {
  const reactions: Record<string, (orderId: string, t: Transaction) => Promise<void>> = {
    StockReserved: saga.onStockReserved,
    StockReservationFailed: saga.onStockReservationFailed,
    PaymentCaptured: saga.onPaymentCaptured,
    PaymentDeclined: saga.onPaymentDeclined,
    PaymentRefunded: saga.onPaymentRefunded,
  };
  const handle = async (event: EventEnvelope) => {
    const react = reactions[event.type];
    if (!react) return; // other inventory and payment events are not the saga's business
    const { orderId } = event.payload as { orderId: string };
    await handleOnce(sequelize, CONSUMER_GROUP, event, (t) => react(orderId, t));
  };
  const subscription = await transport.subscribe({ group: CONSUMER_GROUP, topics: ['inventory', 'payments'], handle });
  return { name: 'saga-consumer', close: () => subscription.stop() };
}
