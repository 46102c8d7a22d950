import type { Sequelize, Transaction } from '@cloudretail/db';
import { type EventEnvelope, type PayloadOf, type Transport, handleOnce } from '@cloudretail/events';
import type { Closer } from '@cloudretail/shutdown';
import type { SagaUseCases } from '../../domain/saga-use-cases';

export const CONSUMER_GROUP = 'order-service';

type SagaFact = 'StockReserved' | 'StockReservationFailed' | 'StockCommitFailed' | 'PaymentCaptured' | 'PaymentDeclined' | 'PaymentRefunded';

/**
 * The orchestrator's inbox: inventory and payment facts move orders on. Each event is handled
 * once per group (the inbox row commits with the order change and its outbox events); a handler
 * error is retried by the transport, then dead-lettered (`dlq.order-service`).
 */
export async function startSagaConsumer({ transport, sequelize, saga }: { transport: Transport; sequelize: Sequelize; saga: SagaUseCases }): Promise<Closer> {
  // The payloads were validated against the catalog by the transport (parseEvent).
  const reactions: { [T in SagaFact]: (payload: PayloadOf<T>, t: Transaction) => Promise<void> } = {
    StockReserved: saga.onStockReserved,
    StockReservationFailed: saga.onStockReservationFailed,
    StockCommitFailed: saga.onStockCommitFailed,
    PaymentCaptured: saga.onPaymentCaptured,
    PaymentDeclined: saga.onPaymentDeclined,
    PaymentRefunded: saga.onPaymentRefunded,
  };
  const handle = async (event: EventEnvelope) => {
    if (!Object.hasOwn(reactions, event.type)) return; // other inventory and payment events are not the saga's business
    const react = reactions[event.type as SagaFact] as (payload: unknown, t: Transaction) => Promise<void>;
    await handleOnce(sequelize, CONSUMER_GROUP, event, (t) => react(event.payload, t));
  };
  const subscription = await transport.subscribe({ group: CONSUMER_GROUP, topics: ['inventory', 'payments'], handle });
  return { name: 'saga-consumer', close: () => subscription.stop() };
}
