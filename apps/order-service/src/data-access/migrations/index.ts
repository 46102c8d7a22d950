import type { Migration } from '@cloudretail/db';
import { inboxMigration, outboxMigrations } from '@cloudretail/events';

/** Applied in this order; never edit one that has shipped, add a new one (expand/contract). */
export const migrations: Migration[] = [
  ...outboxMigrations,
  inboxMigration,
  {
    name: '001-create-orders',
    up: ({ sql }) =>
      sql(`
        CREATE TABLE orders (
          id uuid PRIMARY KEY,
          user_id uuid NOT NULL,
          status text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED', 'REFUNDED')),
          step text NOT NULL CHECK (step IN ('AWAITING_STOCK', 'AWAITING_PAYMENT', 'DONE')),
          reason text,
          total_cents bigint NOT NULL CHECK (total_cents >= 0),
          currency char(3) NOT NULL,
          payment_token text,
          step_started_at timestamptz NOT NULL DEFAULT now(),
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX orders_by_user ON orders (user_id, created_at DESC, id DESC);
        CREATE INDEX orders_pending_by_step_start ON orders (step_started_at) WHERE status = 'PENDING';
        CREATE TABLE order_items (
          order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
          position integer NOT NULL,
          product_id uuid NOT NULL,
          quantity integer NOT NULL CHECK (quantity > 0),
          unit_price_cents bigint NOT NULL CHECK (unit_price_cents >= 0),
          PRIMARY KEY (order_id, product_id)
        );
        CREATE TABLE order_history (
          id bigserial PRIMARY KEY,
          order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
          status text NOT NULL,
          step text NOT NULL,
          reason text,
          created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX order_history_by_order ON order_history (order_id, id);
        -- One row per (user, Idempotency-Key): a repeated POST finds its order here.
        CREATE TABLE idempotency_keys (
          user_id uuid NOT NULL,
          key text NOT NULL,
          request_hash text NOT NULL,
          order_id uuid NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
          created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (user_id, key)
        );
      `),
    down: ({ sql }) => sql('DROP TABLE idempotency_keys; DROP TABLE order_history; DROP TABLE order_items; DROP TABLE orders'),
  },
  {
    name: '002-order-payment-id',
    // The payment the order asked for, then the one captured: payment facts are checked against it.
    up: ({ sql }) => sql('ALTER TABLE orders ADD COLUMN payment_id uuid'),
    down: ({ sql }) => sql('ALTER TABLE orders DROP COLUMN payment_id'),
  },
  {
    name: '003-product-prices',
    // The price read model (price-repository.ts): the catalog's word per product, stamped with the
    // occurredAt of the event it comes from (null: read from product-service on a miss). A product
    // deleted before its price was known here has a row without one.
    up: ({ sql }) =>
      sql(`
        CREATE TABLE product_prices (
          product_id uuid PRIMARY KEY,
          price_cents bigint CHECK (price_cents >= 0),
          currency char(3),
          active boolean NOT NULL,
          event_at timestamptz,
          updated_at timestamptz NOT NULL DEFAULT now(),
          CHECK (NOT active OR (price_cents IS NOT NULL AND currency IS NOT NULL))
        )
      `),
    down: ({ sql }) => sql('DROP TABLE product_prices'),
  },
  {
    name: '004-orders-finished-by-update',
    // Admission control counts the sagas finished in the last seconds (their rate) every 200 ms.
    up: ({ sql }) => sql("CREATE INDEX orders_finished_by_update ON orders (updated_at) WHERE status <> 'PENDING'"),
    down: ({ sql }) => sql('DROP INDEX orders_finished_by_update'),
  },
];
