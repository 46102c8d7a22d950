import type { Sequelize } from '@cloudretail/db';
import { type EventEnvelope, type PayloadOf, type Subscription, type Transport, handleOnce } from '@cloudretail/events';
import type { Closer } from '@cloudretail/shutdown';
import type { PaymentUseCases } from '../../domain/payment-use-cases';

export const CONSUMER_GROUP = 'payment-service';

/**
 * The saga's payment step: PaymentRequested → capture (PaymentCaptured / PaymentDeclined);
 * OrderCancelled → refund or tombstone. Each event is handled once per group (the inbox row
 * commits with the outcome); a handler error is retried by the transport, then dead-lettered.
 */
export async function startOrderEventsConsumer({ transport, sequelize, payments }: { transport: Transport; sequelize: Sequelize; payments: PaymentUseCases }): Promise<Closer> {
  const handle = async (event: EventEnvelope) => {
    switch (event.type) {
      case 'PaymentRequested': {
        const request = event.payload as PayloadOf<'PaymentRequested'>;
        await handleOnce(sequelize, CONSUMER_GROUP, event, async (t) => {
          await payments.requestPayment(request, t);
        });
        return;
      }
      case 'OrderCancelled': {
        const { orderId, reason } = event.payload as PayloadOf<'OrderCancelled'>;
        await handleOnce(sequelize, CONSUMER_GROUP, event, (t) => payments.cancelForOrder(orderId, reason, t));
        return;
      }
      default:
        return; // other order events are not this service's business
    }
  };
  const subscription: Subscription = await transport.subscribe({ group: CONSUMER_GROUP, topics: ['orders'], handle });
  return { name: 'order-events-consumer', close: () => subscription.stop() };
}
