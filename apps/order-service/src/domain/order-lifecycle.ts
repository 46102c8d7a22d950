import type { Sequelize, Transaction } from '@cloudretail/db';
import { type EventEnvelope, createEvent, enqueue } from '@cloudretail/events';
import type { OrderRepository } from '../data-access/order-repository';
import type { CancelReason, OrderRecord } from './order';

/** The outcome label of `saga_outcomes_total`. */
export type SagaOutcome = 'confirmed' | 'refunded' | CancelReason;

export interface LifecycleDeps {
  sequelize: Sequelize;
  orders: OrderRepository;
  /** Called after a final status commits; `firstFinal` is false for REFUNDED (the saga had already ended). */
  onOutcome?: (outcome: SagaOutcome, order: OrderRecord, firstFinal: boolean) => void;
}

type Final = { status: 'CONFIRMED' } | { status: 'CANCELLED'; reason: CancelReason } | { status: 'REFUNDED' };

const itemsOf = (order: OrderRecord) => order.items.map(({ productId, quantity }) => ({ productId, quantity }));

/**
 * Every change of an order's state goes through here, inside the caller's transaction and after
 * the caller locked the order: the row, a history row and the events (outbox) commit together.
 * OrderStatusChanged accompanies every status change, for clients following the order.
 */
export function orderLifecycle({ sequelize, orders, onOutcome = () => undefined }: LifecycleDeps) {
  const statusChanged = (order: OrderRecord) =>
    createEvent('OrderStatusChanged', order.id, { orderId: order.id, userId: order.userId, status: order.status, ...(order.reason ? { reason: order.reason } : {}) });

  /** The events that tell the other services what a final status means for them (`order`: as it was before). */
  function consequences(order: OrderRecord, final: Final): EventEnvelope[] {
    const base = { orderId: order.id, userId: order.userId, items: itemsOf(order) };
    switch (final.status) {
      case 'CONFIRMED':
        return [createEvent('OrderConfirmed', order.id, base)];
      case 'REFUNDED':
        return [createEvent('OrderRefunded', order.id, base)];
      case 'CANCELLED':
        // Out of stock while PENDING: nothing was reserved and no payment requested, so there is
        // nothing to undo. Out of stock once CONFIRMED (the units could not be sold): the capture
        // is refunded on OrderCancelled.
        return final.reason === 'out_of_stock' && order.status === 'PENDING' ? [] : [createEvent('OrderCancelled', order.id, { ...base, reason: final.reason })];
    }
  }

  return {
    /** Moves a PENDING order to its next step, with the event that starts it (and the payment it asks for). */
    async advance(order: OrderRecord, step: 'AWAITING_PAYMENT', events: EventEnvelope[], t: Transaction, paymentId?: string): Promise<OrderRecord> {
      const updated = await orders.update(order.id, { status: 'PENDING', step, newStep: true, clearPaymentToken: true, paymentId }, t);
      await enqueue(sequelize, t, events);
      return updated;
    },

    /** Ends the saga (or, for REFUNDED and a CONFIRMED order cancelled, its compensation); `paymentId`: the payment captured. */
    async finish(order: OrderRecord, final: Final, t: Transaction, paymentId?: string): Promise<OrderRecord> {
      const reason = final.status === 'CANCELLED' ? final.reason : undefined;
      const updated = await orders.update(order.id, { status: final.status, step: 'DONE', reason, newStep: true, clearPaymentToken: true, paymentId }, t);
      await enqueue(sequelize, t, [...consequences(order, final), statusChanged(updated)]);
      const outcome: SagaOutcome = final.status === 'CANCELLED' ? final.reason : final.status === 'CONFIRMED' ? 'confirmed' : 'refunded';
      t.afterCommit(() => onOutcome(outcome, updated, order.status === 'PENDING'));
      return updated;
    },

    statusChanged,
  };
}

export type OrderLifecycle = ReturnType<typeof orderLifecycle>;
