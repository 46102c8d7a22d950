import type { Migration } from '@cloudretail/db';
import { inboxMigration, outboxMigrations } from '@cloudretail/events';

/** Applied in this order; never edit one that has shipped, add a new one (expand/contract). */
export const migrations: Migration[] = [
  ...outboxMigrations,
  inboxMigration,
  {
    name: '001-create-stock',
    // The CHECK is the last line of defence: even a buggy code path cannot oversell.
    up: ({ sql }) =>
      sql(`
        CREATE TABLE stock (
          product_id uuid PRIMARY KEY,
          available integer NOT NULL DEFAULT 0,
          reserved integer NOT NULL DEFAULT 0,
          updated_at timestamptz NOT NULL DEFAULT now(),
          CONSTRAINT stock_non_negative CHECK (available >= 0 AND reserved >= 0)
        );
      `),
    down: ({ sql }) => sql('DROP TABLE stock'),
  },
  {
    name: '002-create-reservations',
    up: ({ sql }) =>
      sql(`
        CREATE TABLE reservations (
          order_id uuid PRIMARY KEY,
          status text NOT NULL CHECK (status IN ('RESERVED', 'COMMITTED', 'RELEASED')),
          expires_at timestamptz NOT NULL,
          release_reason text,
          created_at timestamptz NOT NULL DEFAULT now(),
          updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX reservations_expiring ON reservations (expires_at) WHERE status = 'RESERVED';
        CREATE TABLE reservation_items (
          order_id uuid NOT NULL REFERENCES reservations (order_id) ON DELETE CASCADE,
          product_id uuid NOT NULL,
          quantity integer NOT NULL CHECK (quantity > 0),
          PRIMARY KEY (order_id, product_id)
        );
      `),
    down: ({ sql }) => sql('DROP TABLE reservation_items; DROP TABLE reservations'),
  },
  {
    name: '003-create-stock-returns',
    // A refund returns a committed (sold) reservation's units; the row makes that happen once.
    up: ({ sql }) =>
      sql(`
        CREATE TABLE stock_returns (
          order_id uuid PRIMARY KEY REFERENCES reservations (order_id) ON DELETE CASCADE,
          created_at timestamptz NOT NULL DEFAULT now()
        );
      `),
    down: ({ sql }) => sql('DROP TABLE stock_returns'),
  },
];
