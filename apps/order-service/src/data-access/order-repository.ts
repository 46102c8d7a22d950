import type { Db, Tx } from '@cloudretail/db';
import type { OrderItem, OrderRecord, OrderStatus, SagaStep } from '../domain/order';

interface Row {
  id: string;
  user_id: string;
  status: OrderStatus;
  step: SagaStep;
  reason: string | null;
  total_cents: string;
  currency: string;
  payment_token: string | null;
  payment_id: string | null;
  created_at: Date;
  updated_at: Date;
  items: { productId: string; quantity: number; unitPriceCents: number }[];
}

const COLUMNS = 'id, user_id, status, step, reason, total_cents, currency, payment_token, payment_id, created_at, updated_at';
/** An order's columns with its items, in one row: reads and writes are one round trip each. */
const itemsOf = (table: string) =>
  `(SELECT coalesce(json_agg(json_build_object('productId', i.product_id, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents) ORDER BY i.position), '[]')
    FROM order_items i WHERE i.order_id = ${table}.id) AS items`;
const WITH_ITEMS = `${COLUMNS}, ${itemsOf('orders')}`;

export interface NewOrder {
  id: string;
  userId: string;
  items: OrderItem[];
  totalCents: number;
  currency: string;
  paymentToken: string;
  /** The payment the order asks for (OrderPlaced carries it to inventory and on to payment-service). */
  paymentId: string;
}

export interface OrderChange {
  status: OrderStatus;
  step: SagaStep;
  reason?: string;
  /** True when the step changes: the step timeout starts again. */
  newStep: boolean;
  clearPaymentToken: boolean;
  /** The payment the order is about from now on (requested, then captured); unchanged when absent. */
  paymentId?: string;
}

/** Orders with their items and history, as plain records; reads take the caller's transaction when it has one. */
export function orderRepository(db: Db) {
  const query = <T extends object>(sql: string, bind: unknown[], tx?: Tx) => (tx ?? db).query<T>(sql, bind);

  const toRecord = (r: Row): OrderRecord => ({
    id: r.id,
    userId: r.user_id,
    status: r.status,
    step: r.step,
    items: r.items.map((i) => ({ productId: i.productId, quantity: i.quantity, unitPriceCents: Number(i.unitPriceCents) })),
    totalCents: Number(r.total_cents),
    currency: r.currency,
    ...(r.reason ? { reason: r.reason } : {}),
    paymentToken: r.payment_token,
    paymentId: r.payment_id,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  });

  return {
    /**
     * The order with its items, its first history row and its idempotency key, in one statement;
     * null when the user already used the key (nothing is written then). A concurrent twin request
     * waits on the key's row, then gets null.
     */
    async insert(order: NewOrder, key: { userId: string; key: string; requestHash: string }, tx: Tx): Promise<OrderRecord | null> {
      const [row] = await query<Omit<Row, 'items'>>(
        `WITH k AS (
           INSERT INTO idempotency_keys (user_id, key, request_hash, order_id) VALUES ($2, $10, $11, $1) ON CONFLICT DO NOTHING RETURNING order_id
         ), o AS (
           INSERT INTO orders (id, user_id, status, step, total_cents, currency, payment_token, payment_id)
           SELECT $1::uuid, $2::uuid, 'PENDING', 'AWAITING_STOCK', $3::bigint, $4::text, $5::text, $12::uuid FROM k RETURNING ${COLUMNS}
         ), i AS (
           INSERT INTO order_items (order_id, position, product_id, quantity, unit_price_cents)
           SELECT $1, p, i, q, c FROM unnest($6::int[], $7::uuid[], $8::int[], $9::bigint[]) AS t (p, i, q, c) WHERE EXISTS (SELECT 1 FROM k)
         ), h AS (
           INSERT INTO order_history (order_id, status, step) SELECT id, status, step FROM o
         )
         SELECT * FROM o`,
        [
          order.id,
          order.userId,
          order.totalCents,
          order.currency,
          order.paymentToken,
          order.items.map((_, n) => n),
          order.items.map((i) => i.productId),
          order.items.map((i) => i.quantity),
          order.items.map((i) => i.unitPriceCents),
          key.key,
          key.requestHash,
          order.paymentId,
        ],
        tx,
      );
      return row ? toRecord({ ...row, items: order.items }) : null;
    },

    async findIdempotencyKey(userId: string, key: string): Promise<{ requestHash: string; orderId: string } | null> {
      const [row] = await query<{ request_hash: string; order_id: string }>('SELECT request_hash, order_id FROM idempotency_keys WHERE user_id = $1 AND key = $2', [userId, key]);
      return row ? { requestHash: row.request_hash, orderId: row.order_id } : null;
    },

    /** The order, or null; `lock` holds its row until the transaction ends (every state change locks first). */
    async find(id: string, { tx, lock = false }: { tx?: Tx; lock?: boolean } = {}): Promise<OrderRecord | null> {
      const [row] = await query<Row>(`SELECT ${WITH_ITEMS} FROM orders WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id], tx);
      return row ? toRecord(row) : null;
    },

    /** Several orders, locked in id order (so two transactions locking overlapping sets cannot deadlock). */
    async lockMany(ids: string[], tx: Tx): Promise<OrderRecord[]> {
      const rows = await query<Row>(`SELECT ${WITH_ITEMS} FROM orders WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`, [ids], tx);
      return rows.map(toRecord);
    },

    /** Changes the order and adds its history row, in one statement. */
    async update(id: string, change: OrderChange, tx: Tx): Promise<OrderRecord> {
      const [row] = await query<Row>(
        `WITH o AS (
           UPDATE orders SET status = $2, step = $3, reason = $4, updated_at = now(),
             step_started_at = CASE WHEN $5 THEN now() ELSE step_started_at END,
             payment_token = CASE WHEN $6 THEN NULL ELSE payment_token END,
             payment_id = coalesce($7, payment_id)
           WHERE id = $1 RETURNING ${COLUMNS}
         ), h AS (
           INSERT INTO order_history (order_id, status, step, reason) SELECT id, status, step, reason FROM o
         )
         SELECT o.*, ${itemsOf('o')} FROM o`,
        [id, change.status, change.step, change.reason ?? null, change.newStep, change.clearPaymentToken, change.paymentId ?? null],
        tx,
      );
      return toRecord(row);
    },

    /** The user's orders, newest first. */
    async listByUser(userId: string, page: number, limit: number): Promise<{ items: OrderRecord[]; total: number }> {
      const [rows, [{ total }]] = await Promise.all([
        query<Row>(`SELECT ${WITH_ITEMS} FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, [userId, limit, (page - 1) * limit]),
        query<{ total: string }>('SELECT count(*) AS total FROM orders WHERE user_id = $1', [userId]),
      ]);
      return { items: rows.map(toRecord), total: Number(total) };
    },

    /**
     * Locks one PENDING order whose current step started more than `timeoutMs` ago. SKIP LOCKED
     * lets every replica's sweeper work at once, and skips an order an event handler is moving on.
     */
    async lockNextTimedOut(timeoutMs: number, tx: Tx): Promise<string | null> {
      const [row] = await query<{ id: string }>(
        `SELECT id FROM orders WHERE status = 'PENDING' AND step_started_at <= now() - $1 * interval '1 millisecond'
         ORDER BY step_started_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [timeoutMs],
        tx,
      );
      return row?.id ?? null;
    },
  };
}

export type OrderRepository = ReturnType<typeof orderRepository>;
