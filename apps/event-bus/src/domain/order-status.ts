import { z } from '@cloudretail/config';

/** The statuses of the order service's orders, as the public contract names them. */
export const ORDER_STATUSES = ['PENDING', 'CONFIRMED', 'CANCELLED', 'REFUNDED'] as const;
export type OrderStatus = (typeof ORDER_STATUSES)[number];

/**
 * How far along its life an order is. A change is applied only when it moves the order forward,
 * so duplicates and events overtaken by a later one (Redis consumers of one group do not keep
 * order between them) never roll the status back. CONFIRMED and CANCELLED exclude each other.
 */
const STAGE: Record<OrderStatus, number> = { PENDING: 0, CONFIRMED: 1, CANCELLED: 1, REFUNDED: 2 };
export const stageOf = (status: OrderStatus) => STAGE[status];

/**
 * A stream ends at the first final status. CONFIRMED counts as final (the public contract's
 * lifecycle ends there); a later REFUNDED is an admin action the client sees on its next fetch.
 */
export const isFinal = (status: OrderStatus) => status !== 'PENDING';

/** The latest known status of an order, with a per-order version that grows with every change. */
export interface OrderStatusRecord {
  orderId: string;
  userId: string;
  status: OrderStatus;
  reason?: string;
  /** When the order service made the change. */
  at: string;
  /** 1 for the first status seen, +1 per change: the SSE event id. */
  version: number;
}

/** What a client receives as `data:` of an `event: status`. */
export const StatusEvent = z
  .object({ orderId: z.uuid(), status: z.enum(ORDER_STATUSES), reason: z.string().optional(), at: z.string() })
  .meta({ id: 'OrderStatusEvent' });
export type StatusEvent = z.infer<typeof StatusEvent>;

export const toStatusEvent = ({ orderId, status, reason, at }: OrderStatusRecord): StatusEvent => ({ orderId, status, ...(reason ? { reason } : {}), at });
