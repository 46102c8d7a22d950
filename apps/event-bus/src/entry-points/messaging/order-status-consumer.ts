import { type PayloadOf, type Transport, topicOf } from '@cloudretail/events';
import type { Closer } from '@cloudretail/shutdown';
import type { OrderStatusUseCases } from '../../domain/order-status-use-cases';

/**
 * Consumes OrderStatusChanged in group `event-bus`: every replica joins, each handles a share, and
 * the status channel fans each change out to all replicas. The envelope and payload were already
 * validated against the catalog by the transport; other events on the topic are not ours.
 */
export async function startOrderStatusConsumer({ transport, useCases }: { transport: Transport; useCases: OrderStatusUseCases }): Promise<Closer> {
  const subscription = await transport.subscribe({
    group: 'event-bus',
    topics: [topicOf('OrderStatusChanged')],
    async handle(event) {
      if (event.type !== 'OrderStatusChanged') return;
      const { orderId, userId, status, reason } = event.payload as PayloadOf<'OrderStatusChanged'>;
      await useCases.recordStatusChange({ orderId, userId, status, reason, at: event.occurredAt });
    },
  });
  return { name: 'order-status-consumer', close: () => subscription.stop() };
}
