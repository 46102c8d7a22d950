import type { Tx } from '@cloudretail/db';
import { type EventEnvelope, createEvent, enqueue } from '@cloudretail/events';
import type { OrderRepository } from '../data-access/order-repository';
import type { CancelReason, OrderRecord } from './order';

/** The outcome label of `saga_outcomes_total`. */
export type SagaOutcome = 'confirmed' | 'refunded' | CancelReason;

export interface LifecycleDeps {
  orders: OrderRepository;
  /** Called after a final status commits; `firstFinal` is false for REFUNDED (the saga had already ended). */
  onOutcome?: (outcome: SagaOutcome, order: OrderRecord, firstFinal: boolean) => void;
}

type Final = { status: 'CONFIRMED' } | { status: 'CANCELLED'; reason: CancelReason } | { status: 'REFUNDED' };

const itemsOf = (order: OrderRecord) => order.items.map(({ productId, quantity }) => ({ productId, quantity }));

/**
 * Every change of an order's state goes through here, inside the caller's transaction and after
 * the caller locked the order: the row, a history row and the events (outbox) commit together.
 * Clients following an order see its status derived from these facts (event-bus): every status
 * change has its event (OrderPlaced, OrderConfirmed, OrderCancelled, OrderRefunded).
 */
export function orderLifecycle({ orders, onOutcome = () => undefined }: LifecycleDeps) {
  /** The events that tell the other services what a final status means for them (`order`: as it was before). */
  function consequences(order: OrderRecord, final: Final): EventEnvelope[] {
    const base = { orderId: order.id, userId: order.userId, items: itemsOf(order) };
    switch (final.status) {
      case 'CONFIRMED':
        return [createEvent('OrderConfirmed', order.id, base)];
      case 'REFUNDED':
        return [createEvent('OrderRefunded', order.id, base)];
      case 'CANCELLED':
        // Always, also out of stock while PENDING (nothing to undo: inventory finds no reservation,
        // payment-service records a tombstone), so followers of the order see it end. Out of
        // stock once CONFIRMED (the units could not be sold): the capture is refunded on it.
        return [createEvent('OrderCancelled', order.id, { ...base, reason: final.reason })];
    }
  }

  return {
    /** Moves a PENDING order to its next step, with the event that starts it (and the payment it asks for). */
    async advance(order: OrderRecord, step: 'AWAITING_PAYMENT', events: EventEnvelope[], tx: Tx, paymentId?: string): Promise<OrderRecord> {
      const updated = await orders.update(order.id, { status: 'PENDING', step, newStep: true, clearPaymentToken: true, paymentId }, tx);
      enqueue(tx, events);
      return updated;
    },

    /** Ends the saga (or, for REFUNDED and a CONFIRMED order cancelled, its compensation); `paymentId`: the payment captured. */
    async finish(order: OrderRecord, final: Final, tx: Tx, paymentId?: string): Promise<OrderRecord> {
      const reason = final.status === 'CANCELLED' ? final.reason : undefined;
      const updated = await orders.update(order.id, { status: final.status, step: 'DONE', reason, newStep: true, clearPaymentToken: true, paymentId }, tx);
      enqueue(tx, consequences(order, final));
      const outcome: SagaOutcome = final.status === 'CANCELLED' ? final.reason : final.status === 'CONFIRMED' ? 'confirmed' : 'refunded';
      tx.afterCommit(() => onOutcome(outcome, updated, order.status === 'PENDING'));
      return updated;
    },
  };
}

export type OrderLifecycle = ReturnType<typeof orderLifecycle>;
