import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '@cloudretail/db';
import { notFound } from '@cloudretail/errors';
import { createEvent } from '@cloudretail/events';
import type { OrderRepository } from '../data-access/order-repository';
import type { OrderRecord } from './order';
import type { OrderLifecycle } from './order-lifecycle';

interface Deps {
  db: Db;
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
export function sagaUseCases({ db, orders, lifecycle, stepTimeoutMs, onIgnored = () => undefined }: Deps) {
  /** Per transaction, the orders already locked (by {@link lockOrders}) as they are now. */
  const locked = new WeakMap<Tx, Map<string, OrderRecord>>();

  /** The locked order. An unknown order is an error: the event is retried, then dead-lettered for a human. */
  async function lockOrder(orderId: string, tx: Tx): Promise<OrderRecord> {
    const order = locked.get(tx)?.get(orderId) ?? (await orders.find(orderId, { tx, lock: true }));
    if (!order) throw notFound(`Order ${orderId}`);
    return order;
  }

  /** Keeps what a reaction made of an order, for the next event about it in the same batch. */
  const remember = (order: OrderRecord, tx: Tx) => void locked.get(tx)?.set(order.id, order);

  /** A PENDING order waits for stock and payment; the step only tells which fact came last. */
  const awaitingPayment = (order: OrderRecord) => order.status === 'PENDING' && order.step !== 'DONE';

  /** Why a capture or decline is not about the payment this order is waiting for, or null when it is. */
  function paymentMismatch(order: OrderRecord, fact: Money): IgnoredFact['mismatch'] | null {
    if (!awaitingPayment(order)) return 'not_awaiting_payment';
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
    /**
     * Locks every order a batch of facts is about, in id order, in one statement: the reactions
     * below then find them here, and two replicas' batches cannot deadlock on each other's orders.
     */
    async lockOrders(orderIds: string[], tx: Tx): Promise<void> {
      const found = orderIds.length ? await orders.lockMany([...new Set(orderIds)], tx) : [];
      locked.set(tx, new Map(found.map((o) => [o.id, o])));
    },

    /**
     * Stock is held. Today's orders need nothing here: inventory passed the payment request on
     * (StockReserved.payment) and payment-service captures from it. An order placed by an older
     * release (no payment on the fact) is asked for its payment as before, under an id of the
     * order's choosing; its card token leaves with the request and is forgotten here.
     */
    async onStockReserved({ orderId, payment }: { orderId: string; payment?: unknown }, tx: Tx): Promise<void> {
      if (payment) return;
      const order = await lockOrder(orderId, tx);
      if (order.status !== 'PENDING' || order.step !== 'AWAITING_STOCK' || !order.paymentToken) return;
      const paymentId = order.paymentId ?? randomUUID();
      const request = { orderId, userId: order.userId, paymentId, amountCents: order.totalCents, currency: order.currency, paymentToken: order.paymentToken };
      remember(await lifecycle.advance(order, 'AWAITING_PAYMENT', [createEvent('PaymentRequested', orderId, request)], tx, paymentId), tx);
    },

    async onStockReservationFailed({ orderId }: { orderId: string }, tx: Tx): Promise<void> {
      const order = await lockOrder(orderId, tx);
      if (order.status === 'PENDING') remember(await lifecycle.finish(order, { status: 'CANCELLED', reason: 'out_of_stock' }, tx), tx);
    },

    async onPaymentCaptured(fact: Money & { orderId: string }, tx: Tx): Promise<void> {
      const order = await lockOrder(fact.orderId, tx);
      const mismatch = paymentMismatch(order, fact);
      if (mismatch) return ignore(order, 'PaymentCaptured', mismatch, fact);
      remember(await lifecycle.finish(order, { status: 'CONFIRMED' }, tx, fact.paymentId), tx);
    },

    /** Declined: cancel, and OrderCancelled makes inventory release the reserved stock. */
    async onPaymentDeclined(fact: Money & { orderId: string }, tx: Tx): Promise<void> {
      const order = await lockOrder(fact.orderId, tx);
      const mismatch = paymentMismatch(order, fact);
      if (mismatch) return ignore(order, 'PaymentDeclined', mismatch, fact);
      remember(await lifecycle.finish(order, { status: 'CANCELLED', reason: 'payment_declined' }, tx), tx);
    },

    /** An admin refund of a confirmed order; a refund that compensates a cancellation changes nothing here. */
    async onPaymentRefunded(fact: Money & { orderId: string }, tx: Tx): Promise<void> {
      const order = await lockOrder(fact.orderId, tx);
      const mismatch = refundMismatch(order, fact);
      if (mismatch) return ignore(order, 'PaymentRefunded', mismatch, fact);
      remember(await lifecycle.finish(order, { status: 'REFUNDED' }, tx), tx);
    },

    /**
     * The units of a CONFIRMED order could not be sold (its reservation expired before the payment
     * came, and the stock is gone): cancel it, out_of_stock, and OrderCancelled has payment-service
     * refund the capture. Never CONFIRMED with nothing sold.
     */
    async onStockCommitFailed({ orderId }: { orderId: string }, tx: Tx): Promise<void> {
      const order = await lockOrder(orderId, tx);
      if (order.status === 'CONFIRMED') remember(await lifecycle.finish(order, { status: 'CANCELLED', reason: 'out_of_stock' }, tx), tx);
    },

    /**
     * Cancels orders stuck on one step for longer than the step timeout, one transaction each, so
     * a slow one never holds the others' locks. Resolves with how many were cancelled.
     */
    async cancelTimedOut(limit = 100): Promise<number> {
      let cancelled = 0;
      while (cancelled < limit) {
        const done = await db.transaction(async (tx) => {
          const orderId = await orders.lockNextTimedOut(stepTimeoutMs, tx);
          if (!orderId) return false;
          await lifecycle.finish(await lockOrder(orderId, tx), { status: 'CANCELLED', reason: 'timeout' }, tx);
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
