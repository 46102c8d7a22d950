import { QueryTypes, type Sequelize, type Transaction } from '@cloudretail/db';
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
export function orderRepository(sequelize: Sequelize) {
  const query = <T extends object>(sql: string, bind: unknown[], transaction?: Transaction) => sequelize.query<T>(sql, { bind, type: QueryTypes.SELECT, transaction });

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
    /** The order with its items and its first history row, in one statement. */
    async insert(order: NewOrder, transaction: Transaction): Promise<OrderRecord> {
      const [row] = await query<Omit<Row, 'items'>>(
        `WITH o AS (
           INSERT INTO orders (id, user_id, status, step, total_cents, currency, payment_token)
           VALUES ($1, $2, 'PENDING', 'AWAITING_STOCK', $3, $4, $5) RETURNING ${COLUMNS}
         ), i AS (
           INSERT INTO order_items (order_id, position, product_id, quantity, unit_price_cents)
           SELECT $1, p, i, q, c FROM unnest($6::int[], $7::uuid[], $8::int[], $9::bigint[]) AS t (p, i, q, c)
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
        ],
        transaction,
      );
      return toRecord({ ...row, items: order.items });
    },

    /** Records the key for the order; false when the user already used it (a concurrent twin waits here, then sees it). */
    async claimIdempotencyKey(userId: string, key: string, requestHash: string, orderId: string, transaction: Transaction): Promise<boolean> {
      const rows = await query(
        'INSERT INTO idempotency_keys (user_id, key, request_hash, order_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING order_id',
        [userId, key, requestHash, orderId],
        transaction,
      );
      return rows.length === 1;
    },

    async findIdempotencyKey(userId: string, key: string): Promise<{ requestHash: string; orderId: string } | null> {
      const [row] = await query<{ request_hash: string; order_id: string }>('SELECT request_hash, order_id FROM idempotency_keys WHERE user_id = $1 AND key = $2', [userId, key]);
      return row ? { requestHash: row.request_hash, orderId: row.order_id } : null;
    },

    /** The order, or null; `lock` holds its row until the transaction ends (every state change locks first). */
    async find(id: string, { transaction, lock = false }: { transaction?: Transaction; lock?: boolean } = {}): Promise<OrderRecord | null> {
      const [row] = await query<Row>(`SELECT ${WITH_ITEMS} FROM orders WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id], transaction);
      return row ? toRecord(row) : null;
    },

    /** Changes the order and adds its history row, in one statement. */
    async update(id: string, change: OrderChange, transaction: Transaction): Promise<OrderRecord> {
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
        transaction,
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
    async lockNextTimedOut(timeoutMs: number, transaction: Transaction): Promise<string | null> {
      const [row] = await query<{ id: string }>(
        `SELECT id FROM orders WHERE status = 'PENDING' AND step_started_at <= now() - $1 * interval '1 millisecond'
         ORDER BY step_started_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [timeoutMs],
        transaction,
      );
      return row?.id ?? null;
    },
  };
}

export type OrderRepository = ReturnType<typeof orderRepository>;
