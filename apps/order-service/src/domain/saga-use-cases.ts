import { randomUUID } from 'node:crypto';
import type { Sequelize, Transaction } from '@cloudretail/db';
import { notFound } from '@cloudretail/errors';
import { createEvent } from '@cloudretail/events';
import type { OrderRepository } from '../data-access/order-repository';
import type { OrderRecord } from './order';
import type { OrderLifecycle } from './order-lifecycle';

interface Deps {
  sequelize: Sequelize;
  orders: OrderRepository;
  lifecycle: OrderLifecycle;
  stepTimeoutMs: number;
  /** A payment fact that does not match what the order asked for: not acted on (logged and counted by the caller). */
  onIgnored?: (fact: IgnoredFact) => void;
}

export interface IgnoredFact {
  type: 'PaymentCaptured' | 'PaymentDeclined' | 'PaymentRefunded';
  orderId: string;
  /** What did not match: the order's state, the payment, or the amount. */
  mismatch: 'not_awaiting_payment' | 'not_confirmed' | 'payment_id' | 'amount';
  paymentId: string;
}

type Money = { paymentId: string; amountCents: number; currency: string };

/**
 * The orchestrator's reactions to inventory and payment facts. Each runs in the consumer's inbox
 * transaction and locks the order first, so it cannot interleave with a user cancel, the timeout
 * sweeper or another event about the same order. A fact about an order that has already ended is
 * ignored (its compensation is under way), except a refund of a CONFIRMED order and stock that
 * could not be sold for one.
 *
 * Payment facts are checked against the order's own state before anything happens: a capture or
 * decline counts only while the order awaits payment and for the amount and currency it asked
 * for; a refund only for the payment that was captured. Anything else (a forged or misrouted
 * event) is ignored and reported through `onIgnored`, never acted on and never dead-lettered.
 */
export function sagaUseCases({ sequelize, orders, lifecycle, stepTimeoutMs, onIgnored = () => undefined }: Deps) {
  /** The locked order. An unknown order is an error: the event is retried, then dead-lettered for a human. */
  async function lockOrder(orderId: string, t: Transaction): Promise<OrderRecord> {
    const order = await orders.find(orderId, { transaction: t, lock: true });
    if (!order) throw notFound(`Order ${orderId}`);
    return order;
  }

  /** Why a capture or decline is not about the payment this order is waiting for, or null when it is. */
  function paymentMismatch(order: OrderRecord, fact: Money): IgnoredFact['mismatch'] | null {
    if (order.status !== 'PENDING' || order.step !== 'AWAITING_PAYMENT') return 'not_awaiting_payment';
    // null: requested before payment ids were kept (migration 002); only the amount can be checked.
    if (order.paymentId !== null && fact.paymentId !== order.paymentId) return 'payment_id';
    if (fact.amountCents !== order.totalCents || fact.currency !== order.currency) return 'amount';
    return null;
  }

  /** Why a refund is not of this order's captured payment, or null when it is. */
  function refundMismatch(order: OrderRecord, fact: Money): IgnoredFact['mismatch'] | null {
    if (order.status !== 'CONFIRMED') return 'not_confirmed';
    // null: confirmed before payment ids were kept (migration 002); only the amount can be checked.
    if (order.paymentId !== null && fact.paymentId !== order.paymentId) return 'payment_id';
    if (fact.amountCents !== order.totalCents || fact.currency !== order.currency) return 'amount';
    return null;
  }

  /** Reports a fact that does not match, unless the order simply ended first (a late or duplicate fact, which is normal). */
  function ignore(order: OrderRecord, type: IgnoredFact['type'], mismatch: IgnoredFact['mismatch'], fact: Money): void {
    const late = order.status !== 'PENDING' && (mismatch === 'not_awaiting_payment' || mismatch === 'not_confirmed');
    if (!late) onIgnored({ type, orderId: order.id, mismatch, paymentId: fact.paymentId });
  }

  return {
    /** Stock is held: ask for the payment, under an id of the order's choosing. The card token leaves with the request and is forgotten here. */
    async onStockReserved({ orderId }: { orderId: string }, t: Transaction): Promise<void> {
      const order = await lockOrder(orderId, t);
      if (order.status !== 'PENDING' || order.step !== 'AWAITING_STOCK' || !order.paymentToken) return;
      const paymentId = randomUUID();
      const request = { orderId, userId: order.userId, paymentId, amountCents: order.totalCents, currency: order.currency, paymentToken: order.paymentToken };
      await lifecycle.advance(order, 'AWAITING_PAYMENT', [createEvent('PaymentRequested', orderId, request)], t, paymentId);
    },

    async onStockReservationFailed({ orderId }: { orderId: string }, t: Transaction): Promise<void> {
      const order = await lockOrder(orderId, t);
      if (order.status === 'PENDING') await lifecycle.finish(order, { status: 'CANCELLED', reason: 'out_of_stock' }, t);
    },

    async onPaymentCaptured(fact: Money & { orderId: string }, t: Transaction): Promise<void> {
      const order = await lockOrder(fact.orderId, t);
      const mismatch = paymentMismatch(order, fact);
      if (mismatch) return ignore(order, 'PaymentCaptured', mismatch, fact);
      await lifecycle.finish(order, { status: 'CONFIRMED' }, t, fact.paymentId);
    },

    /** Declined: cancel, and OrderCancelled makes inventory release the reserved stock. */
    async onPaymentDeclined(fact: Money & { orderId: string }, t: Transaction): Promise<void> {
      const order = await lockOrder(fact.orderId, t);
      const mismatch = paymentMismatch(order, fact);
      if (mismatch) return ignore(order, 'PaymentDeclined', mismatch, fact);
      await lifecycle.finish(order, { status: 'CANCELLED', reason: 'payment_declined' }, t);
    },

    /** An admin refund of a confirmed order; a refund that compensates a cancellation changes nothing here. */
    async onPaymentRefunded(fact: Money & { orderId: string }, t: Transaction): Promise<void> {
      const order = await lockOrder(fact.orderId, t);
      const mismatch = refundMismatch(order, fact);
      if (mismatch) return ignore(order, 'PaymentRefunded', mismatch, fact);
      await lifecycle.finish(order, { status: 'REFUNDED' }, t);
    },

    /**
     * The units of a CONFIRMED order could not be sold (its reservation expired before the payment
     * came, and the stock is gone): cancel it, out_of_stock, and OrderCancelled has payment-service
     * refund the capture. Never CONFIRMED with nothing sold.
     */
    async onStockCommitFailed({ orderId }: { orderId: string }, t: Transaction): Promise<void> {
      const order = await lockOrder(orderId, t);
      if (order.status === 'CONFIRMED') await lifecycle.finish(order, { status: 'CANCELLED', reason: 'out_of_stock' }, t);
    },

    /**
     * Cancels orders stuck on one step for longer than the step timeout, one transaction each, so
     * a slow one never holds the others' locks. Resolves with how many were cancelled.
     */
    async cancelTimedOut(limit = 100): Promise<number> {
      let cancelled = 0;
      while (cancelled < limit) {
        const done = await sequelize.transaction(async (t) => {
          const orderId = await orders.lockNextTimedOut(stepTimeoutMs, t);
          if (!orderId) return false;
          await lifecycle.finish(await lockOrder(orderId, t), { status: 'CANCELLED', reason: 'timeout' }, t);
          return true;
        });
        if (!done) break;
        cancelled += 1;
      }
      return cancelled;
    },
  };
}

export type SagaUseCases = ReturnType<typeof sagaUseCases>;
