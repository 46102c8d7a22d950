import type { Migration } from '@cloudretail/db';
import { inboxMigration, outboxMigrations } from '@cloudretail/events';

/** Applied in this order; never edit one that has shipped, add a new one (expand/contract). */
export const migrations: Migration[] = [
  ...outboxMigrations,
  inboxMigration,
  {
    name: '001-create-payments',
    // order_id is UNIQUE: one payment per order is what makes a capture happen at most once,
    // whatever the number of PaymentRequested deliveries. A CANCELLED row with no amount is a
    // tombstone: the order was cancelled before payment, so a late request must not charge.
    up: ({ sql }) =>
      sql(`
        CREATE TABLE payments (
          id uuid PRIMARY KEY,
          order_id uuid NOT NULL UNIQUE,
          user_id uuid,
          status text NOT NULL CHECK (status IN ('PENDING', 'CAPTURED', 'DECLINED', 'REFUNDED', 'CANCELLED')),
          amount_cents bigint CHECK (amount_cents >= 0),
          currency char(3),
          provider text,
          provider_ref text,
          decline_reason text,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT payments_amount_unless_tombstone CHECK (status = 'CANCELLED' OR (amount_cents IS NOT NULL AND currency IS NOT NULL))
        );
        CREATE INDEX payments_by_user ON payments (user_id, created_at DESC);
        CREATE TABLE payment_status_history (
          id bigserial PRIMARY KEY,
          payment_id uuid NOT NULL REFERENCES payments (id) ON DELETE CASCADE,
          status text NOT NULL,
          reason text,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX payment_status_history_by_payment ON payment_status_history (payment_id, id);
      `),
    down: ({ sql }) => sql('DROP TABLE payment_status_history; DROP TABLE payments'),
  },
  {
    name: '002-create-sandbox-provider',
    // The sandbox provider's own state, as a PSP keeps it on its side: durable and shared by every
    // replica, so a refund handled by another process finds the charge. Only the sandbox adapter
    // reads or writes these tables.
    up: ({ sql }) =>
      sql(`
        CREATE TABLE sandbox_charges (
          id text PRIMARY KEY,
          idempotency_key text NOT NULL UNIQUE,
          amount_cents bigint NOT NULL CHECK (amount_cents >= 0),
          currency char(3) NOT NULL,
          approved boolean NOT NULL,
          decline_reason text,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE sandbox_refunds (
          id text PRIMARY KEY,
          idempotency_key text NOT NULL UNIQUE,
          charge_id text NOT NULL REFERENCES sandbox_charges (id),
          amount_cents bigint NOT NULL CHECK (amount_cents > 0),
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX sandbox_refunds_by_charge ON sandbox_refunds (charge_id);
      `),
    down: ({ sql }) => sql('DROP TABLE sandbox_refunds; DROP TABLE sandbox_charges'),
  },
];
