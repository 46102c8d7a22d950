import { z } from 'zod';

const Money = { amountCents: z.number().int().nonnegative(), currency: z.string().length(3) };
const ProductSnapshot = z.object({
  productId: z.uuid(),
  sku: z.string(),
  name: z.string(),
  category: z.string(),
  priceCents: z.number().int().nonnegative(),
  currency: z.string().length(3),
  active: z.boolean(),
});
const Items = z.array(z.object({ productId: z.uuid(), quantity: z.number().int().positive() })).min(1);
const PaymentRequest = z.object({ paymentId: z.uuid(), userId: z.uuid(), paymentToken: z.string().min(1), ...Money });
const PricedItems = z.array(z.object({ productId: z.uuid(), quantity: z.number().int().positive(), unitPriceCents: z.number().int().nonnegative() })).min(1);

/**
 * The event catalog: one entry per event type, with its version, the topic (domain) it travels
 * on, and the payload schema used both for the TypeScript type and for runtime validation.
 */
export const catalog = {
  ProductCreated: { version: 1, topic: 'catalog', schema: ProductSnapshot },
  ProductUpdated: { version: 1, topic: 'catalog', schema: ProductSnapshot },
  ProductDeleted: { version: 1, topic: 'catalog', schema: z.object({ productId: z.uuid() }) },

  /**
   * `payment`: the payment the order asked for, passed on from OrderPlaced, so payment-service
   * captures straight from this fact (no hop back through order-service). Absent from older producers.
   */
  StockReserved: { version: 1, topic: 'inventory', schema: z.object({ orderId: z.uuid(), items: Items, payment: PaymentRequest.optional() }) },
  StockReservationFailed: {
    version: 1,
    topic: 'inventory',
    schema: z.object({ orderId: z.uuid(), reason: z.enum(['out_of_stock', 'unknown_product']), productIds: z.array(z.uuid()) }),
  },
  StockReleased: { version: 1, topic: 'inventory', schema: z.object({ orderId: z.uuid(), items: Items, reason: z.string() }) },
  StockCommitted: { version: 1, topic: 'inventory', schema: z.object({ orderId: z.uuid(), items: Items }) },
  /**
   * OrderConfirmed could not sell the units: the reservation had been released (e.g. it expired
   * before the payment came) and the stock is gone. order-service compensates: refund and cancel.
   */
  StockCommitFailed: {
    version: 1,
    topic: 'inventory',
    schema: z.object({ orderId: z.uuid(), reason: z.enum(['out_of_stock', 'released', 'not_reserved']), productIds: z.array(z.uuid()) }),
  },
  StockReturned: { version: 1, topic: 'inventory', schema: z.object({ orderId: z.uuid(), items: Items }) },
  StockLevelSet: { version: 1, topic: 'inventory', schema: z.object({ productId: z.uuid(), available: z.number().int().nonnegative() }) },
  LowStock: { version: 1, topic: 'inventory', schema: z.object({ productId: z.uuid(), available: z.number().int().nonnegative(), threshold: z.number().int() }) },

  UserRegistered: { version: 1, topic: 'users', schema: z.object({ userId: z.uuid(), email: z.email(), role: z.enum(['customer', 'admin']) }) },

  // The checkout saga. order-service orchestrates: it reacts to inventory and payment facts and
  // publishes the next step; inventory-service and payment-service react to these order events.
  // paymentId + paymentToken: the payment to take once stock is held (inventory passes them on in
  // StockReserved). Optional for older producers, whose orders still go through PaymentRequested.
  OrderPlaced: {
    version: 1,
    topic: 'orders',
    schema: z.object({
      orderId: z.uuid(),
      userId: z.uuid(),
      items: PricedItems,
      totalCents: z.number().int().nonnegative(),
      currency: z.string().length(3),
      paymentId: z.uuid().optional(),
      paymentToken: z.string().min(1).optional(),
    }),
  },
  PaymentRequested: {
    version: 1,
    topic: 'orders',
    // paymentId: the id order-service gives the payment it asks for (optional for older producers);
    // payment-service uses it, so a PaymentCaptured can be checked against what was requested.
    schema: z.object({ orderId: z.uuid(), userId: z.uuid(), paymentToken: z.string().min(1), paymentId: z.uuid().optional(), ...Money }),
  },
  OrderConfirmed: { version: 1, topic: 'orders', schema: z.object({ orderId: z.uuid(), userId: z.uuid(), items: Items }) },
  OrderCancelled: { version: 1, topic: 'orders', schema: z.object({ orderId: z.uuid(), userId: z.uuid(), items: Items, reason: z.string() }) },
  OrderRefunded: { version: 1, topic: 'orders', schema: z.object({ orderId: z.uuid(), userId: z.uuid(), items: Items }) },
  /**
   * Deprecated: no longer produced (event-bus derives an order's status from OrderPlaced,
   * OrderConfirmed, OrderCancelled and OrderRefunded). Still accepted, for events already in flight.
   */
  OrderStatusChanged: {
    version: 1,
    topic: 'orders',
    schema: z.object({ orderId: z.uuid(), userId: z.uuid(), status: z.enum(['PENDING', 'CONFIRMED', 'CANCELLED', 'REFUNDED']), reason: z.string().optional() }),
  },

  PaymentCaptured: { version: 1, topic: 'payments', schema: z.object({ paymentId: z.uuid(), orderId: z.uuid(), ...Money }) },
  PaymentDeclined: { version: 1, topic: 'payments', schema: z.object({ paymentId: z.uuid(), orderId: z.uuid(), reason: z.string(), ...Money }) },
  PaymentRefunded: { version: 1, topic: 'payments', schema: z.object({ paymentId: z.uuid(), orderId: z.uuid(), ...Money }) },
} as const;

export type EventType = keyof typeof catalog;
export const TOPICS = [...new Set(Object.values(catalog).map((e) => e.topic))];
export const topicOf = (type: EventType): string => catalog[type].topic;

/** The catalog as JSON Schemas, for `GET /events/catalog` and docs. */
export function describeCatalog() {
  return Object.entries(catalog).map(([type, entry]) => ({ type, version: entry.version, topic: entry.topic, schema: z.toJSONSchema(entry.schema) }));
}
