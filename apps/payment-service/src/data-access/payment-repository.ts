import { randomUUID } from 'node:crypto';
import { QueryTypes, type Sequelize, type Transaction } from '@cloudretail/db';
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
export function paymentRepository(sequelize: Sequelize) {
  const select = async (sql: string, bind: unknown[], transaction?: Transaction) =>
    (await sequelize.query<Row>(sql, { bind, type: QueryTypes.SELECT, transaction })).map(toRecord);

  /** Runs a statement that writes one payment row (RETURNING its columns) and adds its history row with `reason` ($1), in one round trip. */
  const withHistory = (write: string, bind: unknown[], transaction?: Transaction) =>
    select(
      `WITH p AS (${write} RETURNING ${COLUMNS}),
         h AS (INSERT INTO payment_status_history (payment_id, status, reason) SELECT id, status, $1 FROM p)
       SELECT * FROM p`,
      bind,
      transaction,
    );

  return {
    /**
     * Claims the order's one payment as PENDING, committed at once (one statement, outside any
     * transaction); resolves with the existing payment instead when there is one (a concurrent
     * claim of the same order waits on the unique key, then sees it).
     */
    async claim(request: PaymentRequest, provider: string): Promise<{ payment: PaymentRecord; claimed: boolean }> {
      const [inserted] = await withHistory(
        `INSERT INTO payments (id, order_id, user_id, status, amount_cents, currency, provider)
         VALUES ($2, $3, $4, 'PENDING', $5, $6, $7) ON CONFLICT (order_id) DO NOTHING`,
        [null, request.paymentId ?? randomUUID(), request.orderId, request.userId, request.amountCents, request.currency, provider],
      );
      if (inserted) return { payment: inserted, claimed: true };
      const [existing] = await select(`SELECT ${COLUMNS} FROM payments WHERE order_id = $1`, [request.orderId]);
      return { payment: existing, claimed: false };
    },

    /** Records that the order was cancelled before any payment; null when the order already has one. */
    async insertTombstone(orderId: string, reason: string, transaction: Transaction): Promise<PaymentRecord | null> {
      const [inserted] = await withHistory(`INSERT INTO payments (id, order_id, status) VALUES ($2, $3, 'CANCELLED') ON CONFLICT (order_id) DO NOTHING`, [reason, randomUUID(), orderId], transaction);
      return inserted ?? null;
    },

    /** The payment, locked until the transaction ends. */
    async lockById(id: string, transaction: Transaction): Promise<PaymentRecord | null> {
      return (await select(`SELECT ${COLUMNS} FROM payments WHERE id = $1 FOR UPDATE`, [id], transaction))[0] ?? null;
    },

    async lockByOrder(orderId: string, transaction: Transaction): Promise<PaymentRecord | null> {
      return (await select(`SELECT ${COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE`, [orderId], transaction))[0] ?? null;
    },

    async findById(id: string): Promise<PaymentRecord | null> {
      return (await select(`SELECT ${COLUMNS} FROM payments WHERE id = $1`, [id]))[0] ?? null;
    },

    /** Moves a payment to `status` and writes the history row. */
    async setStatus(
      id: string,
      status: PaymentStatus,
      { reason = null, providerRef, declineReason }: { reason?: string | null; providerRef?: string; declineReason?: string },
      transaction: Transaction,
    ): Promise<PaymentRecord> {
      const [updated] = await withHistory(
        `UPDATE payments SET status = $3, provider_ref = COALESCE($4, provider_ref), decline_reason = COALESCE($5, decline_reason), updated_at = now() WHERE id = $2`,
        [reason, id, status, providerRef ?? null, declineReason ?? null],
        transaction,
      );
      return updated;
    },

    async history(paymentId: string): Promise<{ status: PaymentStatus; reason: string | null; created_at: Date }[]> {
      return sequelize.query('SELECT status, reason, created_at FROM payment_status_history WHERE payment_id = $1 ORDER BY id', { bind: [paymentId], type: QueryTypes.SELECT });
    },

    /** Real payments (tombstones are not payments), newest first; `userId` limits them to one owner. */
    async list({ orderId, userId, page, limit }: { orderId?: string; userId?: string; page: number; limit: number }): Promise<{ items: PaymentRecord[]; total: number }> {
      const where = ['amount_cents IS NOT NULL'];
      const bind: unknown[] = [];
      if (orderId) where.push(`order_id = $${bind.push(orderId)}`);
      if (userId) where.push(`user_id = $${bind.push(userId)}`);
      const filter = where.join(' AND ');
      const [items, [{ total }]] = await Promise.all([
        select(`SELECT ${COLUMNS} FROM payments WHERE ${filter} ORDER BY created_at DESC, id LIMIT $${bind.length + 1} OFFSET $${bind.length + 2}`, [...bind, limit, (page - 1) * limit]),
        sequelize.query<{ total: string }>(`SELECT count(*) AS total FROM payments WHERE ${filter}`, { bind, type: QueryTypes.SELECT }),
      ]);
      return { items, total: Number(total) };
    },
  };
}

export type PaymentRepository = ReturnType<typeof paymentRepository>;
