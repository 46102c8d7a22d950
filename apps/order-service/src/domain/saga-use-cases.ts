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
}

/**
 * The orchestrator's reactions to inventory and payment facts. Each runs in the consumer's inbox
 * transaction and locks the order first, so it cannot interleave with a user cancel, the timeout
 * sweeper or another event about the same order. A fact about an order that has already ended is
 * ignored (its compensation is under way), except a refund of a CONFIRMED order.
 */
export function sagaUseCases({ sequelize, orders, lifecycle, stepTimeoutMs }: Deps) {
  /** The locked order. An unknown order is an error: the event is retried, then dead-lettered for a human. */
  async function lockOrder(orderId: string, t: Transaction): Promise<OrderRecord> {
    const order = await orders.find(orderId, { transaction: t, lock: true });
    if (!order) throw notFound(`Order ${orderId}`);
    return order;
  }

  return {
    /** Stock is held: ask for the payment. The card token leaves with the request and is forgotten here. */
    async onStockReserved(orderId: string, t: Transaction): Promise<void> {
      const order = await lockOrder(orderId, t);
      if (order.status !== 'PENDING' || order.step !== 'AWAITING_STOCK' || !order.paymentToken) return;
      const request = { orderId, userId: order.userId, amountCents: order.totalCents, currency: order.currency, paymentToken: order.paymentToken };
      await lifecycle.advance(order, 'AWAITING_PAYMENT', [createEvent('PaymentRequested', orderId, request)], t);
    },

    async onStockReservationFailed(orderId: string, t: Transaction): Promise<void> {
      const order = await lockOrder(orderId, t);
      if (order.status === 'PENDING') await lifecycle.finish(order, { status: 'CANCELLED', reason: 'out_of_stock' }, t);
    },

    async onPaymentCaptured(orderId: string, t: Transaction): Promise<void> {
      const order = await lockOrder(orderId, t);
      if (order.status === 'PENDING') await lifecycle.finish(order, { status: 'CONFIRMED' }, t);
    },

    /** Declined: cancel, and OrderCancelled makes inventory release the reserved stock. */
    async onPaymentDeclined(orderId: string, t: Transaction): Promise<void> {
      const order = await lockOrder(orderId, t);
      if (order.status === 'PENDING') await lifecycle.finish(order, { status: 'CANCELLED', reason: 'payment_declined' }, t);
    },

    /** An admin refund of a confirmed order; a refund that compensates a cancellation changes nothing here. */
    async onPaymentRefunded(orderId: string, t: Transaction): Promise<void> {
      const order = await lockOrder(orderId, t);
      if (order.status === 'CONFIRMED') await lifecycle.finish(order, { status: 'REFUNDED' }, t);
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
