import type { Migration } from '@cloudretail/db';
import { inboxMigration, outboxMigration } from '@cloudretail/events';

/** Applied in this order; never edit one that has shipped, add a new one (expand/contract). */
export const migrations: Migration[] = [
  outboxMigration,
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
];
