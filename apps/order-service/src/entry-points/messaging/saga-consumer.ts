import type { Db } from '@cloudretail/db';
import { type Transport, startConsumer } from '@cloudretail/events';
import type { Closer } from '@cloudretail/shutdown';
import type { SagaUseCases } from '../../domain/saga-use-cases';

export const CONSUMER_GROUP = 'order-service';

/**
 * The orchestrator's inbox: inventory and payment facts move orders on. A batch of facts is
 * handled in one transaction: its orders locked first, in id order, in one statement; each fact
 * once per group (inbox); the order changes and their outbox events commit together. A failing
 * fact is retried on its own, then dead-lettered (`dlq.order-service`).
 */
export async function startSagaConsumer({ transport, db, saga }: { transport: Transport; db: Db; saga: SagaUseCases }): Promise<Closer> {
  return startConsumer({
    transport,
    db,
    group: CONSUMER_GROUP,
    // StockReserved with the payment request on it is payment-service's business, not ours (older orders' facts have none).
    ignore: (e) => e.type === 'StockReserved' && (e.payload as { payment?: unknown }).payment !== undefined,
    prepare: (events, tx) => saga.lockOrders(events.map((e) => (e.payload as { orderId: string }).orderId), tx),
    handlers: {
      StockReserved: saga.onStockReserved,
      StockReservationFailed: saga.onStockReservationFailed,
      StockCommitFailed: saga.onStockCommitFailed,
      PaymentCaptured: saga.onPaymentCaptured,
      PaymentDeclined: saga.onPaymentDeclined,
      PaymentRefunded: saga.onPaymentRefunded,
    },
  });
}
