import type { Db } from '@cloudretail/db';
import { type Transport, startConsumer } from '@cloudretail/events';
import type { Closer } from '@cloudretail/shutdown';
import type { OrderStatusUseCases } from '../../domain/order-status-use-cases';

/**
 * Derives each order's status from the facts on the `orders` topic, in group `event-bus`: every
 * replica joins, each handles a share, and the status channel fans each change out to all
 * replicas. OrderStatusChanged is no longer produced; it is still read for the events an older
 * order-service left in flight. A batch of events is recorded in one transaction.
 */
export function startOrderStatusConsumer({ transport, db, useCases }: { transport: Transport; db: Db; useCases: OrderStatusUseCases }): Promise<Closer> {
  const { recordStatusChange: record } = useCases;
  return startConsumer({
    transport,
    db,
    group: 'event-bus',
    prepare: (events, tx) => useCases.lockOrders(events.map((e) => (e.payload as { orderId: string }).orderId), tx),
    handlers: {
      OrderPlaced: ({ orderId, userId }, tx, { occurredAt }) => record({ orderId, userId, status: 'PENDING', at: occurredAt }, tx),
      OrderConfirmed: ({ orderId, userId }, tx, { occurredAt }) => record({ orderId, userId, status: 'CONFIRMED', at: occurredAt }, tx),
      OrderCancelled: ({ orderId, userId, reason }, tx, { occurredAt }) => record({ orderId, userId, status: 'CANCELLED', reason, at: occurredAt }, tx),
      OrderRefunded: ({ orderId, userId }, tx, { occurredAt }) => record({ orderId, userId, status: 'REFUNDED', at: occurredAt }, tx),
      OrderStatusChanged: ({ orderId, userId, status, reason }, tx, { occurredAt }) => record({ orderId, userId, status, reason, at: occurredAt }, tx),
    },
  });
}
