import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '@cloudretail/db';
import type { PaymentRecord, PaymentRequest, PaymentStatus } from '../domain/payment';

interface Row {
  id: string;
  order_id: string;
  user_id: string | null;
  status: PaymentStatus;
  amount_cents: string | null;
  currency: string | null;
  provider: string | null;
  provider_ref: string | null;
  decline_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'id, order_id, user_id, status, amount_cents, currency, provider, provider_ref, decline_reason, created_at, updated_at';

const toRecord = (r: Row): PaymentRecord => ({
  id: r.id,
  orderId: r.order_id,
  userId: r.user_id,
  status: r.status,
  amountCents: Number(r.amount_cents ?? 0),
  currency: r.currency ?? '',
  ...(r.decline_reason ? { declineReason: r.decline_reason } : {}),
  provider: r.provider,
  providerRef: r.provider_ref,
  tombstone: r.amount_cents === null,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

/** Payments and their status history, as plain records. */
export function paymentRepository(db: Db) {
  const select = async (sql: string, params: unknown[], tx?: Tx) => (await (tx ?? db).query<Row>(sql, params)).map(toRecord);

  /** Runs a statement that writes payment rows (RETURNING their columns) and adds a history row with `reason` ($1) for each, in one round trip. */
  const withHistory = (write: string, params: unknown[], tx?: Tx) =>
    select(
      `WITH p AS (${write} RETURNING ${COLUMNS}),
         h AS (INSERT INTO payment_status_history (payment_id, status, reason) SELECT id, status, $1 FROM p)
       SELECT * FROM p`,
      params,
      tx,
    );

  return {
    /**
     * Claims one PENDING payment per order that has none yet, for all `requests` in one statement
     * committed at once (outside any transaction), and resolves the payments it inserted. An order
     * claimed concurrently elsewhere is left out (its claim waits on the unique key, then skips).
     * Rows go in order id order, so two overlapping claims cannot deadlock.
     */
    async claim(requests: PaymentRequest[], provider: string): Promise<PaymentRecord[]> {
      const sorted = [...requests].sort((a, b) => (a.orderId < b.orderId ? -1 : 1));
      return withHistory(
        `INSERT INTO payments (id, order_id, user_id, status, amount_cents, currency, provider)
         SELECT id, order_id, user_id, 'PENDING', amount_cents, currency, $7
         FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::bigint[], $6::text[]) WITH ORDINALITY AS r (id, order_id, user_id, amount_cents, currency, n)
         ORDER BY n
         ON CONFLICT (order_id) DO NOTHING`,
        [
          null,
          sorted.map((r) => r.paymentId ?? randomUUID()),
          sorted.map((r) => r.orderId),
          sorted.map((r) => r.userId),
          sorted.map((r) => r.amountCents),
          sorted.map((r) => r.currency),
          provider,
        ],
      );
    },

    /** The payments (tombstones included) of these orders, as `tx` sees them (its own writes too). */
    async findByOrders(orderIds: string[], tx?: Tx): Promise<PaymentRecord[]> {
      return select(`SELECT ${COLUMNS} FROM payments WHERE order_id = ANY($1::uuid[])`, [orderIds], tx);
    },

    /** Records that the order was cancelled before any payment; null when the order already has one. */
    async insertTombstone(orderId: string, reason: string, tx: Tx): Promise<PaymentRecord | null> {
      const [inserted] = await withHistory(`INSERT INTO payments (id, order_id, status) VALUES ($2, $3, 'CANCELLED') ON CONFLICT (order_id) DO NOTHING`, [reason, randomUUID(), orderId], tx);
      return inserted ?? null;
    },

    /** The payment, locked until the transaction ends. */
    async lockById(id: string, tx: Tx): Promise<PaymentRecord | null> {
      return (await select(`SELECT ${COLUMNS} FROM payments WHERE id = $1 FOR UPDATE`, [id], tx))[0] ?? null;
    },

    async lockByOrder(orderId: string, tx: Tx): Promise<PaymentRecord | null> {
      return (await select(`SELECT ${COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE`, [orderId], tx))[0] ?? null;
    },

    async findById(id: string): Promise<PaymentRecord | null> {
      return (await select(`SELECT ${COLUMNS} FROM payments WHERE id = $1`, [id]))[0] ?? null;
    },

    /** Moves a payment to `status` and writes the history row. */
    async setStatus(
      id: string,
      status: PaymentStatus,
      { reason = null, providerRef, declineReason }: { reason?: string | null; providerRef?: string; declineReason?: string },
      tx: Tx,
    ): Promise<PaymentRecord> {
      const [updated] = await withHistory(
        `UPDATE payments SET status = $3, provider_ref = COALESCE($4, provider_ref), decline_reason = COALESCE($5, decline_reason), updated_at = now() WHERE id = $2`,
        [reason, id, status, providerRef ?? null, declineReason ?? null],
        tx,
      );
      return updated;
    },

    async history(paymentId: string): Promise<{ status: PaymentStatus; reason: string | null; created_at: Date }[]> {
      return db.query('SELECT status, reason, created_at FROM payment_status_history WHERE payment_id = $1 ORDER BY id', [paymentId]);
    },

    /** Real payments (tombstones are not payments), newest first; `userId` limits them to one owner. */
    async list({ orderId, userId, page, limit }: { orderId?: string; userId?: string; page: number; limit: number }): Promise<{ items: PaymentRecord[]; total: number }> {
      const where = ['amount_cents IS NOT NULL'];
      const params: unknown[] = [];
      if (orderId) where.push(`order_id = $${params.push(orderId)}`);
      if (userId) where.push(`user_id = $${params.push(userId)}`);
      const filter = where.join(' AND ');
      const [items, [{ total }]] = await Promise.all([
        select(`SELECT ${COLUMNS} FROM payments WHERE ${filter} ORDER BY created_at DESC, id LIMIT $${params.length + 1} OFFSET $${params.length + 2}`, [...params, limit, (page - 1) * limit]),
        db.query<{ total: string }>(`SELECT count(*) AS total FROM payments WHERE ${filter}`, params),
      ]);
      return { items, total: Number(total) };
    },
  };
}

export type PaymentRepository = ReturnType<typeof paymentRepository>;
