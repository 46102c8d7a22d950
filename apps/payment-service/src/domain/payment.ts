import { z } from '@cloudretail/config';

export const PaymentStatus = z.enum(['PENDING', 'CAPTURED', 'DECLINED', 'REFUNDED', 'CANCELLED']);

export const Payment = z
  .object({
    id: z.uuid(),
    orderId: z.uuid(),
    status: PaymentStatus,
    amountCents: z.number().int(),
    currency: z.string(),
    declineReason: z.string().optional(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Payment' });

export const PaymentHistoryEntry = z.object({ status: PaymentStatus, reason: z.string().optional(), at: z.string() });
export const PaymentDetail = Payment.extend({ history: z.array(PaymentHistoryEntry) }).meta({ id: 'PaymentDetail' });

export const PaymentQuery = z.object({
  orderId: z.uuid().optional(),
  page: z.coerce.number().int().min(1).default(1),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});
export const PaymentList = z.object({ items: z.array(Payment), page: z.number(), limit: z.number(), total: z.number() });
export const IdParams = z.object({ id: z.uuid() });

/** What PaymentRequested asks for (the saga's payment step). */
export interface PaymentRequest {
  orderId: string;
  userId: string;
  amountCents: number;
  currency: string;
  paymentToken: string;
  /** The id order-service gave the payment it asks for; the payment gets it, so facts can be checked. */
  paymentId?: string;
}

export type PaymentStatus = z.infer<typeof PaymentStatus>;
export type Payment = z.infer<typeof Payment>;
export type PaymentDetail = z.infer<typeof PaymentDetail>;
export type PaymentQuery = z.infer<typeof PaymentQuery>;
export type PaymentList = z.infer<typeof PaymentList>;

/** A payment row with what only this service sees (owner, provider reference). */
export interface PaymentRecord extends Payment {
  userId: string | null;
  provider: string | null;
  providerRef: string | null;
  /** A CANCELLED row recorded before any payment existed: not a payment, hidden from the API. */
  tombstone: boolean;
}
