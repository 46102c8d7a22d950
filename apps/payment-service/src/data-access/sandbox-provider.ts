import { randomUUID } from 'node:crypto';
import type { Db } from '@cloudretail/db';
import type { CaptureRequest, CaptureResult, PaymentProvider } from '../domain/payment-provider';

/** The sandbox's test cards, as payment sandboxes document them. */
export const SANDBOX_TOKENS = {
  tok_visa: { approved: true },
  tok_mastercard: { approved: true },
  tok_chargeDeclined: { approved: false, declineReason: 'card_declined' },
} as const;

interface ChargeRow {
  id: string;
  approved: boolean;
  decline_reason: string | null;
}

/**
 * A provider that moves no money: the token decides the outcome. It behaves like a real PSP's API
 * where it matters to the saga: its state is durable and shared by every replica (the
 * `sandbox_charges` / `sandbox_refunds` tables, written outside the caller's transaction, as a
 * remote call would be), a capture is idempotent per idempotency key (the orderId), a refund is
 * idempotent per its key, refunds only apply to approved charges and never exceed the amount.
 *
 * `db` should be a pool of its own: the provider is called while the caller holds a transaction,
 * and a provider call must never wait for a connection the caller's work holds.
 */
export function createSandboxProvider(db: Db) {
  const select = <T extends object>(sql: string, params: unknown[]) => db.query<T>(sql, params);

  const provider = {
    name: 'sandbox',
    async capture({ orderId, amountCents, currency, token }: CaptureRequest): Promise<CaptureResult> {
      const card: { approved: boolean; declineReason?: string } = (SANDBOX_TOKENS as Record<string, { approved: boolean; declineReason?: string }>)[token] ?? {
        approved: false,
        declineReason: 'invalid_token',
      };
      // A concurrent capture with the same key waits on the unique index and inserts nothing;
      // then it, like any later one, reads the first charge back.
      const [inserted] = await select<ChargeRow>(
        `INSERT INTO sandbox_charges (id, idempotency_key, amount_cents, currency, approved, decline_reason)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, approved, decline_reason`,
        [`sbx_ch_${randomUUID()}`, orderId, amountCents, currency, card.approved, card.declineReason ?? null],
      );
      const found = inserted ?? (await select<ChargeRow>('SELECT id, approved, decline_reason FROM sandbox_charges WHERE idempotency_key = $1', [orderId]))[0];
      return found.approved ? { approved: true, providerRef: found.id } : { approved: false, providerRef: found.id, declineReason: found.decline_reason ?? 'declined' };
    },

    async refund(providerRef: string, amountCents: number, idempotencyKey = `refund:${providerRef}`): Promise<void> {
      await db.transaction(async (tx) => {
        // The charge row lock serialises refunds of one charge, so their sum cannot pass the amount.
        const [charge] = await tx.query<{ approved: boolean; amount_cents: string }>('SELECT approved, amount_cents FROM sandbox_charges WHERE id = $1 FOR UPDATE', [providerRef]);
        if (!charge?.approved) throw new Error(`sandbox: no captured charge ${providerRef}`);
        const [previous] = await tx.query<{ charge_id: string }>('SELECT charge_id FROM sandbox_refunds WHERE idempotency_key = $1', [idempotencyKey]);
        if (previous) {
          if (previous.charge_id !== providerRef) throw new Error(`sandbox: idempotency key ${idempotencyKey} was used for another charge`);
          return; // the same request again: the first refund stands
        }
        const [{ refunded }] = await tx.query<{ refunded: string }>('SELECT COALESCE(sum(amount_cents), 0) AS refunded FROM sandbox_refunds WHERE charge_id = $1', [providerRef]);
        if (Number(refunded) + amountCents > Number(charge.amount_cents)) throw new Error(`sandbox: refund of ${amountCents} exceeds the charge of ${charge.amount_cents} (${refunded} refunded)`);
        await tx.execute('INSERT INTO sandbox_refunds (id, idempotency_key, charge_id, amount_cents) VALUES ($1, $2, $3, $4)', [`sbx_re_${randomUUID()}`, idempotencyKey, providerRef, amountCents]);
      });
    },

    /** Approved charges made for an order (0 or 1), what a PSP dashboard would show. */
    async capturedCount(orderId: string): Promise<number> {
      return (await select('SELECT 1 FROM sandbox_charges WHERE idempotency_key = $1 AND approved', [orderId])).length;
    },

    /** Cents refunded of a charge. */
    async refundedCents(providerRef: string): Promise<number> {
      const [{ refunded }] = await select<{ refunded: string }>('SELECT COALESCE(sum(amount_cents), 0) AS refunded FROM sandbox_refunds WHERE charge_id = $1', [providerRef]);
      return Number(refunded);
    },
  } satisfies PaymentProvider & Record<string, unknown>;
  return provider;
}

export type SandboxProvider = ReturnType<typeof createSandboxProvider>;
