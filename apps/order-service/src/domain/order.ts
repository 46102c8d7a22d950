import { z } from '@cloudretail/config';

/**
 * Card tokens the built-in sandbox provider knows (tok_chargeDeclined is valid: it is declined at
 * capture, which is the point of it). Anything else is rejected at order creation, before a saga
 * starts that could only fail.
 */
export const CARD_TOKENS = ['tok_visa', 'tok_mastercard', 'tok_chargeDeclined'] as const;

export const OrderStatus = z.enum(['PENDING', 'CONFIRMED', 'CANCELLED', 'REFUNDED']);
/** Where a PENDING order is in the saga; the step timeout applies to each step. */
export const SagaStep = z.enum(['AWAITING_STOCK', 'AWAITING_PAYMENT', 'DONE']);
export const CancelReason = z.enum(['out_of_stock', 'payment_declined', 'timeout', 'cancelled_by_user']);

const OrderItemInput = z.object({ productId: z.uuid(), quantity: z.number().int().positive().max(1000) }).strict();

export const PlaceOrderInput = z
  .object({
    items: z
      .array(OrderItemInput)
      .min(1)
      .max(50)
      .refine((items) => new Set(items.map((i) => i.productId)).size === items.length, 'each product may appear once; put the total in its quantity'),
    paymentMethod: z.object({ type: z.literal('card'), token: z.enum(CARD_TOKENS, `must be one of ${CARD_TOKENS.join(', ')}`) }).strict(),
  })
  .strict();

export const IdempotencyKeyHeader = z.object({ 'idempotency-key': z.string({ error: 'is required' }).trim().min(1, 'is required').max(200) });

export const OrderItem = z.object({ productId: z.uuid(), quantity: z.number().int(), unitPriceCents: z.number().int() });

export const Order = z
  .object({
    id: z.uuid(),
    userId: z.uuid(),
    status: OrderStatus,
    items: z.array(OrderItem),
    totalCents: z.number().int(),
    currency: z.string(),
    reason: z.string().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Order' });

export const OrderQuery = z.object({
  page: z.coerce.number().int().min(1).default(1),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});
export const OrderList = z.object({ items: z.array(Order), page: z.number(), limit: z.number(), total: z.number() });
export const IdParams = z.object({ id: z.uuid() });

export type OrderStatus = z.infer<typeof OrderStatus>;
export type SagaStep = z.infer<typeof SagaStep>;
export type CancelReason = z.infer<typeof CancelReason>;
export type PlaceOrderInput = z.infer<typeof PlaceOrderInput>;
export type OrderItem = z.infer<typeof OrderItem>;
export type Order = z.infer<typeof Order>;
export type OrderQuery = z.infer<typeof OrderQuery>;
export type OrderList = z.infer<typeof OrderList>;

/** An order with the saga's bookkeeping, which never leaves the service. */
export interface OrderRecord extends Order {
  step: SagaStep;
  /** Kept only until the payment is requested. */
  paymentToken: string | null;
  /** The payment this order asked for (set with PaymentRequested), then the one captured. */
  paymentId: string | null;
}

export const isFinal = (status: OrderStatus) => status !== 'PENDING';
