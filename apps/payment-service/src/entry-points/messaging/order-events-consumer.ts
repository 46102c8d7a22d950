import type { Db } from '@cloudretail/db';
import { type EventEnvelope, type PayloadOf, type Transport, startConsumer } from '@cloudretail/events';
import type { Closer } from '@cloudretail/shutdown';
import type { PaymentRequest } from '../../domain/payment';
import type { PaymentUseCases } from '../../domain/payment-use-cases';

export const CONSUMER_GROUP = 'payment-service';

/** The payment a StockReserved carries (inventory passes on what OrderPlaced asked for); none from an older inventory/order pair. */
const requestOfReservation = ({ orderId, payment }: PayloadOf<'StockReserved'>): PaymentRequest | undefined => payment && { orderId, ...payment };

/**
 * The batch's payment requests, in stream order, except those of an order that an earlier event of
 * the batch cancels: they must meet its tombstone, not be captured ahead of it.
 */
function requestsToCaptureAhead(events: EventEnvelope[]): PaymentRequest[] {
  const cancelled = new Set<string>();
  const requests: PaymentRequest[] = [];
  for (const event of events) {
    if (event.type === 'OrderCancelled') cancelled.add((event.payload as PayloadOf<'OrderCancelled'>).orderId);
    const request =
      event.type === 'StockReserved' ? requestOfReservation(event.payload as PayloadOf<'StockReserved'>) : event.type === 'PaymentRequested' ? (event.payload as PayloadOf<'PaymentRequested'>) : undefined;
    if (request && !cancelled.has(request.orderId)) requests.push(request);
  }
  return requests;
}

/**
 * The saga's payment step: StockReserved with a payment (or the legacy PaymentRequested, from an
 * order-service of the previous release) → capture (PaymentCaptured / PaymentDeclined);
 * OrderCancelled → refund or tombstone. A read batch is handled in one transaction: its requests
 * are claimed in one statement and captured concurrently first, then each event is handled once
 * per group (inbox) in stream order. A failing event is retried on its own, then dead-lettered.
 */
export function startOrderEventsConsumer({ transport, db, payments }: { transport: Transport; db: Db; payments: PaymentUseCases }): Promise<Closer> {
  return startConsumer({
    transport,
    db,
    group: CONSUMER_GROUP,
    prepare: (events, tx) => payments.captureAhead(requestsToCaptureAhead(events), tx),
    handlers: {
      StockReserved: async (payload, tx) => {
        const request = requestOfReservation(payload);
        if (request) await payments.requestPayment(request, tx);
      },
      PaymentRequested: (payload, tx) => payments.requestPayment(payload, tx),
      OrderCancelled: ({ orderId, reason }, tx) => payments.cancelForOrder(orderId, reason, tx),
    },
  });
}
