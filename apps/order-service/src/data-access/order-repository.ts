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
  created_at: Date;
  updated_at: Date;
}

interface ItemRow {
  order_id: string;
  product_id: string;
  quantity: number;
  unit_price_cents: string;
}

const COLUMNS = 'id, user_id, status, step, reason, total_cents, currency, payment_token, created_at, updated_at';

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
}

/** Orders with their items and history, as plain records; reads take the caller's transaction when it has one. */
export function orderRepository(sequelize: Sequelize) {
  const query = <T extends object>(sql: string, bind: unknown[], transaction?: Transaction) => sequelize.query<T>(sql, { bind, type: QueryTypes.SELECT, transaction });

  const toRecord = (r: Row, items: OrderItem[]): OrderRecord => ({
    id: r.id,
    userId: r.user_id,
    status: r.status,
    step: r.step,
    items,
    totalCents: Number(r.total_cents),
    currency: r.currency,
    ...(r.reason ? { reason: r.reason } : {}),
    paymentToken: r.payment_token,
    createdAt: r.created_at.toISOString(),
    updatedAt: r.updated_at.toISOString(),
  });

  async function withItems(rows: Row[], transaction?: Transaction): Promise<OrderRecord[]> {
    if (!rows.length) return [];
    const items = await query<ItemRow>(
      'SELECT order_id, product_id, quantity, unit_price_cents FROM order_items WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, position',
      [rows.map((r) => r.id)],
      transaction,
    );
    return rows.map((r) =>
      toRecord(
        r,
        items.filter((i) => i.order_id === r.id).map((i) => ({ productId: i.product_id, quantity: i.quantity, unitPriceCents: Number(i.unit_price_cents) })),
      ),
    );
  }

  async function addHistory(orderId: string, status: OrderStatus, step: SagaStep, reason: string | null, transaction: Transaction) {
    await sequelize.query('INSERT INTO order_history (order_id, status, step, reason) VALUES ($1, $2, $3, $4)', { bind: [orderId, status, step, reason], transaction });
  }

  return {
    async insert(order: NewOrder, transaction: Transaction): Promise<OrderRecord> {
      const rows = await query<Row>(
        `INSERT INTO orders (id, user_id, status, step, total_cents, currency, payment_token)
         VALUES ($1, $2, 'PENDING', 'AWAITING_STOCK', $3, $4, $5) RETURNING ${COLUMNS}`,
        [order.id, order.userId, order.totalCents, order.currency, order.paymentToken],
        transaction,
      );
      await sequelize.query(
        `INSERT INTO order_items (order_id, position, product_id, quantity, unit_price_cents)
         SELECT $1, p, i, q, c FROM unnest($2::int[], $3::uuid[], $4::int[], $5::bigint[]) AS t (p, i, q, c)`,
        {
          bind: [order.id, order.items.map((_, n) => n), order.items.map((i) => i.productId), order.items.map((i) => i.quantity), order.items.map((i) => i.unitPriceCents)],
          transaction,
        },
      );
      await addHistory(order.id, 'PENDING', 'AWAITING_STOCK', null, transaction);
      return toRecord(rows[0], order.items.map(({ productId, quantity, unitPriceCents }) => ({ productId, quantity, unitPriceCents })));
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
      const rows = await query<Row>(`SELECT ${COLUMNS} FROM orders WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id], transaction);
      return (await withItems(rows, transaction))[0] ?? null;
    },

    /** `items`: the order's items when the caller has them (they never change), saving the re-read. */
    async update(id: string, change: OrderChange, transaction: Transaction, items?: OrderItem[]): Promise<OrderRecord> {
      const rows = await query<Row>(
        `UPDATE orders SET status = $2, step = $3, reason = $4, updated_at = now(),
           step_started_at = CASE WHEN $5 THEN now() ELSE step_started_at END,
           payment_token = CASE WHEN $6 THEN NULL ELSE payment_token END
         WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, change.status, change.step, change.reason ?? null, change.newStep, change.clearPaymentToken],
        transaction,
      );
      await addHistory(id, change.status, change.step, change.reason ?? null, transaction);
      return items && rows.length ? toRecord(rows[0], items) : (await withItems(rows, transaction))[0];
    },

    /** The user's orders, newest first. */
    async listByUser(userId: string, page: number, limit: number): Promise<{ items: OrderRecord[]; total: number }> {
      const [rows, [{ total }]] = await Promise.all([
        query<Row>(`SELECT ${COLUMNS} FROM orders WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT ${limit} OFFSET ${(page - 1) * limit}`, [userId]),
        query<{ total: string }>('SELECT count(*) AS total FROM orders WHERE user_id = $1', [userId]),
      ]);
      return { items: await withItems(rows), total: Number(total) };
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
