import type { Identity } from '@cloudretail/auth';
import type { Sequelize, Transaction } from '@cloudretail/db';
import { conflict, notFound } from '@cloudretail/errors';
import { createEvent, enqueue } from '@cloudretail/events';
import type { PaymentRepository } from '../data-access/payment-repository';
import type { Payment, PaymentDetail, PaymentList, PaymentQuery, PaymentRecord, PaymentRequest, PaymentStatus } from './payment';
import type { PaymentProvider } from './payment-provider';

interface Deps {
  sequelize: Sequelize;
  payments: PaymentRepository;
  provider: PaymentProvider;
  /** Called once a payment reaches a status (for `payments_total{status}`), after the change commits. */
  onStatus?: (status: PaymentStatus) => void;
}

/** The public view: no owner, no provider reference. */
const toPayment = ({ userId: _u, provider: _p, providerRef: _r, tombstone: _t, ...payment }: PaymentRecord): Payment => payment;

const moneyOf = (p: PaymentRecord) => ({ paymentId: p.id, orderId: p.orderId, amountCents: p.amountCents, currency: p.currency });

/**
 * The payment step of the checkout saga, and refunds. A capture happens at most once per order:
 * the order's one payment row is claimed (PENDING) and committed before the provider is called,
 * and the provider call itself is keyed by orderId, so a retry after a crash mid-capture gets the
 * first result back instead of charging again.
 */
export function paymentUseCases({ sequelize, payments, provider, onStatus = () => undefined }: Deps) {
  /** Runs `fn` in the caller's transaction, or in a new one. */
  const within = <T>(transaction: Transaction | undefined, fn: (t: Transaction) => Promise<T>) => (transaction ? fn(transaction) : sequelize.transaction(fn));
  const countAfterCommit = (t: Transaction, status: PaymentStatus) => t.afterCommit(() => onStatus(status));

  async function refundCaptured(payment: PaymentRecord, reason: string, t: Transaction): Promise<PaymentRecord> {
    // One full refund per payment: its id is the refund's idempotency key at the provider.
    await provider.refund(payment.providerRef ?? '', payment.amountCents, `refund:${payment.id}`);
    const refunded = await payments.setStatus(payment.id, 'REFUNDED', { reason }, t);
    await enqueue(sequelize, t, [createEvent('PaymentRefunded', payment.orderId, moneyOf(refunded))]);
    countAfterCommit(t, 'REFUNDED');
    return refunded;
  }

  return {
    /**
     * Handles PaymentRequested. Duplicates and replays return the payment as it is; a tombstone
     * (the order was cancelled first) is returned without charging. `transaction` is the consumer's
     * inbox transaction: the outcome and the inbox row commit together.
     */
    async requestPayment(request: PaymentRequest, transaction?: Transaction): Promise<Payment> {
      // One statement (the row and its history), committed on its own before the provider is called.
      const { payment } = await payments.claim(request, provider.name);
      // PENDING after a lost race or a crash mid-capture: capturing again is safe (keyed by orderId).
      if (payment.status !== 'PENDING') return toPayment(payment);
      const result = await provider.capture({ orderId: request.orderId, amountCents: request.amountCents, currency: request.currency, token: request.paymentToken });
      return within(transaction, async (t) => {
        const current = await payments.lockByOrder(request.orderId, t);
        if (!current || current.status !== 'PENDING') return toPayment(current ?? payment); // a concurrent duplicate finished first
        if (result.approved) {
          const captured = await payments.setStatus(current.id, 'CAPTURED', { providerRef: result.providerRef }, t);
          await enqueue(sequelize, t, [createEvent('PaymentCaptured', captured.orderId, moneyOf(captured))]);
          countAfterCommit(t, 'CAPTURED');
          return toPayment(captured);
        }
        const declineReason = result.declineReason ?? 'declined';
        const declined = await payments.setStatus(current.id, 'DECLINED', { providerRef: result.providerRef, declineReason, reason: declineReason }, t);
        await enqueue(sequelize, t, [createEvent('PaymentDeclined', declined.orderId, { ...moneyOf(declined), reason: declineReason })]);
        countAfterCommit(t, 'DECLINED');
        return toPayment(declined);
      });
    },

    /**
     * Compensation for OrderCancelled: a captured payment is refunded; with no payment yet, a
     * CANCELLED tombstone makes a late PaymentRequested a no-op. A capture still in flight is an
     * error, so the consumer retries once it has finished.
     */
    async cancelForOrder(orderId: string, reason: string, transaction?: Transaction): Promise<void> {
      await within(transaction, async (t) => {
        if (await payments.insertTombstone(orderId, reason, t)) {
          countAfterCommit(t, 'CANCELLED');
          return;
        }
        const payment = await payments.lockByOrder(orderId, t);
        if (payment?.status === 'PENDING') throw new Error(`payment of order ${orderId} is being captured; retry the cancellation`);
        if (payment?.status === 'CAPTURED') await refundCaptured(payment, `order cancelled: ${reason}`, t);
      });
    },

    /** Admin refund of a captured payment. Refunding again returns it as it is; any other status is a 409. */
    async refund(paymentId: string): Promise<Payment> {
      return sequelize.transaction(async (t) => {
        const payment = await payments.lockById(paymentId, t);
        if (!payment || payment.tombstone) throw notFound('Payment');
        if (payment.status === 'REFUNDED') return toPayment(payment);
        if (payment.status !== 'CAPTURED') throw conflict(`Only a captured payment can be refunded; this one is ${payment.status}`);
        return toPayment(await refundCaptured(payment, 'refunded by an admin', t));
      });
    },

    /** One payment with its history, for its owner or an admin (anyone else: 404). */
    async getPayment(id: string, caller: Identity): Promise<PaymentDetail> {
      const payment = await payments.findById(id);
      if (!payment || payment.tombstone || (caller.role !== 'admin' && payment.userId !== caller.userId)) throw notFound('Payment');
      const history = await payments.history(id);
      return { ...toPayment(payment), history: history.map((h) => ({ status: h.status, ...(h.reason ? { reason: h.reason } : {}), at: h.created_at.toISOString() })) };
    },

    /** The caller's payments (an admin sees everyone's), optionally of one order. */
    async listPayments(query: PaymentQuery, caller: Identity): Promise<PaymentList> {
      const { items, total } = await payments.list({ ...query, userId: caller.role === 'admin' ? undefined : caller.userId });
      return { items: items.map(toPayment), page: query.page, limit: query.limit, total };
    },
  };
}

export type PaymentUseCases = ReturnType<typeof paymentUseCases>;
