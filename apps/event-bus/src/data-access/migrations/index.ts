import type { Migration } from '@cloudretail/db';
import { inboxMigration } from '@cloudretail/events';

/** Applied in this order; never edit one that has shipped, add a new one (expand/contract). */
export const migrations: Migration[] = [
  {
    // The latest status per order, so an SSE request can be authorised (userId) and answered with
    // the current status at once. One small row per order; the order service stays the owner.
    name: '001-create-order-status',
    up: ({ sql }) =>
      sql(`
        CREATE TABLE order_status (
          order_id uuid PRIMARY KEY,
          user_id uuid NOT NULL,
          status text NOT NULL,
          stage smallint NOT NULL,
          reason text,
          version integer NOT NULL,
          changed_at timestamptz NOT NULL
        );
      `),
    down: ({ sql }) => sql('DROP TABLE order_status'),
  },
  // Which events the status consumer (group event-bus) has already handled: redelivery is a no-op.
  inboxMigration,
];
