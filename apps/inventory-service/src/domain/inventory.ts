import { z } from '@cloudretail/config';

/** Largest stock level accepted, so `available + reserved` always fits a Postgres integer. */
const MAX_UNITS = 1_000_000_000;

export const ProductIdParams = z.object({ productId: z.uuid() });
export const OrderIdParams = z.object({ orderId: z.uuid() });

export const StockInput = z.object({ available: z.number().int().min(0).max(MAX_UNITS) }).strict();

export const StockLevel = z
  .object({ productId: z.uuid(), available: z.number().int(), reserved: z.number().int() })
  .meta({ id: 'StockLevel' });

export const ReservationItem = z.object({ productId: z.uuid(), quantity: z.number().int().positive().max(100_000) }).strict();

export const ReservationInput = z
  .object({ orderId: z.uuid(), items: z.array(ReservationItem).min(1).max(100) })
  .strict();

export const ReleaseInput = z.object({ reason: z.string().trim().min(1).max(100).default('requested') }).strict();

export const ReservationStatus = z.enum(['RESERVED', 'COMMITTED', 'RELEASED']);

export const Reservation = z
  .object({
    orderId: z.uuid(),
    status: ReservationStatus,
    items: z.array(z.object({ productId: z.uuid(), quantity: z.number().int() })),
    expiresAt: z.string(),
  })
  .meta({ id: 'Reservation' });

/** One product a reservation could not get enough of (the `details` of the 409). */
export interface Shortage {
  productId: string;
  requested: number;
  available: number;
  reason: 'out_of_stock';
}

export type StockInput = z.infer<typeof StockInput>;
export type StockLevel = z.infer<typeof StockLevel>;
export type ReservationItem = z.infer<typeof ReservationItem>;
export type ReservationInput = z.infer<typeof ReservationInput>;
export type ReservationStatus = z.infer<typeof ReservationStatus>;
export type Reservation = z.infer<typeof Reservation>;
