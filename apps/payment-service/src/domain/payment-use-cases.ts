import type { Identity } from '@cloudretail/auth';
import type { Db, Tx } from '@cloudretail/db';
import { conflict, notFound } from '@cloudretail/errors';
import { createEvent, enqueue } from '@cloudretail/events';
import type { PaymentRepository } from '../data-access/payment-repository';
import type { Payment, PaymentDetail, PaymentList, PaymentQuery, PaymentRecord, PaymentRequest, PaymentStatus } from './payment';
import type { CaptureResult, PaymentProvider } from './payment-provider';

interface Deps {
  db: Db;
  payments: PaymentRepository;
  provider: PaymentProvider;
  /** Called once a payment reaches a status (for `payments_total{status}`), after the change commits. */
  onStatus?: (status: PaymentStatus) => void;
}

/** An order's payment once claimed, with the provider's answer when it was PENDING (so captured now). */
interface Claim {
  payment: PaymentRecord;
  result?: CaptureResult;
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
export function paymentUseCases({ db, payments, provider, onStatus = () => undefined }: Deps) {
  /** Per transaction, the claims {@link captureAhead} made for its requests. */
  const claimed = new WeakMap<Tx, Map<string, Claim>>();
  const countAfterCommit = (tx: Tx, status: PaymentStatus) => tx.afterCommit(() => onStatus(status));

  /**
   * Claims a payment for each order that has none (one statement, committed at once, before any
   * provider call), then captures every PENDING one, concurrently. An order's payment that `tx`
   * already sees (e.g. its tombstone, written earlier in `tx`) is not claimed again: that claim
   * would wait for `tx` itself.
   */
  async function claimAndCapture(requests: PaymentRequest[], tx: Tx): Promise<Map<string, Claim>> {
    const byOrder = new Map<string, PaymentRequest>();
    for (const request of requests) if (!byOrder.has(request.orderId)) byOrder.set(request.orderId, request);
    const found = new Map((await payments.findByOrders([...byOrder.keys()], tx)).map((p) => [p.orderId, p]));
    const missing = [...byOrder.values()].filter((r) => !found.has(r.orderId));
    if (missing.length) {
      const inserted = await payments.claim(missing, provider.name);
      inserted.forEach((p) => found.set(p.orderId, p));
      const lost = missing.filter((r) => !found.has(r.orderId)); // claimed meanwhile by another replica
      if (lost.length) (await payments.findByOrders(lost.map((r) => r.orderId), tx)).forEach((p) => found.set(p.orderId, p));
    }
    // PENDING after a lost race or a crash mid-capture too: capturing again is safe (keyed by orderId).
    const settled = await Promise.allSettled(
      [...byOrder.values()].map(async (request): Promise<[string, Claim]> => {
        const payment = found.get(request.orderId);
        if (!payment) throw new Error(`payment of order ${request.orderId} neither claimed nor found`); // unreachable: the claim inserts it or waits for whoever did
        if (payment.status !== 'PENDING') return [request.orderId, { payment }];
        const result = await provider.capture({ orderId: request.orderId, amountCents: request.amountCents, currency: request.currency, token: request.paymentToken });
        return [request.orderId, { payment, result }];
      }),
    );
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason; // the claims stand: the retry captures again, under the same key
    return new Map(settled.map((s) => (s as PromiseFulfilledResult<[string, Claim]>).value));
  }

  /** Records the provider's answer on a payment still PENDING, with its fact, in `tx`. */
  async function settle(payment: PaymentRecord, result: CaptureResult, tx: Tx): Promise<PaymentRecord> {
    if (result.approved) {
      const captured = await payments.setStatus(payment.id, 'CAPTURED', { providerRef: result.providerRef }, tx);
      enqueue(tx, [createEvent('PaymentCaptured', captured.orderId, moneyOf(captured))]);
      countAfterCommit(tx, 'CAPTURED');
      return captured;
    }
    const declineReason = result.declineReason ?? 'declined';
    const declined = await payments.setStatus(payment.id, 'DECLINED', { providerRef: result.providerRef, declineReason, reason: declineReason }, tx);
    enqueue(tx, [createEvent('PaymentDeclined', declined.orderId, { ...moneyOf(declined), reason: declineReason })]);
    countAfterCommit(tx, 'DECLINED');
    return declined;
  }

  async function refundCaptured(payment: PaymentRecord, reason: string, tx: Tx): Promise<PaymentRecord> {
    // One full refund per payment: its id is the refund's idempotency key at the provider.
    await provider.refund(payment.providerRef ?? '', payment.amountCents, `refund:${payment.id}`);
    const refunded = await payments.setStatus(payment.id, 'REFUNDED', { reason }, tx);
    enqueue(tx, [createEvent('PaymentRefunded', payment.orderId, moneyOf(refunded))]);
    countAfterCommit(tx, 'REFUNDED');
    return refunded;
  }

  /**
   * Handles a payment request (StockReserved with its payment, or the legacy PaymentRequested).
   * Duplicates and replays return the payment as it is; a tombstone (the order was cancelled
   * first) is returned without charging. `tx` is the consumer's batch transaction: the outcome and
   * the inbox rows commit together; without one, a transaction of its own.
   */
  async function requestPayment(request: PaymentRequest, tx?: Tx): Promise<Payment> {
    if (!tx) return db.transaction((own) => requestPayment(request, own));
    const { payment, result } = claimed.get(tx)?.get(request.orderId) ?? [...(await claimAndCapture([request], tx)).values()][0];
    if (!result) return toPayment(payment);
    const current = await payments.lockByOrder(request.orderId, tx);
    // A concurrent duplicate (or an earlier event of this batch) finished first.
    if (!current || current.status !== 'PENDING') return toPayment(current ?? payment);
    return toPayment(await settle(current, result, tx));
  }

  return {
    requestPayment,

    /**
     * Claims and captures a batch's payment requests ahead of its handlers: one claim statement and
     * concurrent provider calls instead of one of each per request; {@link requestPayment} then
     * records each answer. Must run before anything in `tx` writes a payment. A request whose
     * order a preceding event of the batch cancels must not be passed: it has to meet the tombstone.
     */
    async captureAhead(requests: PaymentRequest[], tx: Tx): Promise<void> {
      if (requests.length) claimed.set(tx, await claimAndCapture(requests, tx));
    },

    /**
     * Compensation for OrderCancelled: a captured payment is refunded; with no payment yet, a
     * CANCELLED tombstone makes a late request a no-op. A capture still in flight (claimed by
     * another consumer, or left PENDING by a crash) is an error, so the consumer retries once it
     * has finished; a capture earlier in the same batch has been recorded by then.
     */
    async cancelForOrder(orderId: string, reason: string, tx: Tx): Promise<void> {
      if (await payments.insertTombstone(orderId, reason, tx)) {
        countAfterCommit(tx, 'CANCELLED');
        return;
      }
      const payment = await payments.lockByOrder(orderId, tx);
      if (payment?.status === 'PENDING') throw new Error(`payment of order ${orderId} is being captured; retry the cancellation`);
      if (payment?.status === 'CAPTURED') await refundCaptured(payment, `order cancelled: ${reason}`, tx);
    },

    /** Admin refund of a captured payment. Refunding again returns it as it is; any other status is a 409. */
    async refund(paymentId: string): Promise<Payment> {
      return db.transaction(async (tx) => {
        const payment = await payments.lockById(paymentId, tx);
        if (!payment || payment.tombstone) throw notFound('Payment');
        if (payment.status === 'REFUNDED') return toPayment(payment);
        if (payment.status !== 'CAPTURED') throw conflict(`Only a captured payment can be refunded; this one is ${payment.status}`);
        return toPayment(await refundCaptured(payment, 'refunded by an admin', tx));
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
