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

const wakers = new WeakMap<Sequelize, Set<() => void>>();

/**
 * Calls `wake` after each commit, in this process, of a transaction that wrote outbox rows
 * through `sequelize` (the relay publishes them at once instead of at its next poll). Returns the
 * unsubscribe function. Rows written by another process are found by its own relay or by the poll.
 */
export function onOutboxCommit(sequelize: Sequelize, wake: () => void): () => void {
  const set = wakers.get(sequelize) ?? new Set();
  wakers.set(sequelize, set);
  set.add(wake);
  return () => set.delete(wake);
}

/** Writes events to the outbox in the caller's transaction: they exist if and only if the change commits. */
export async function enqueue(sequelize: Sequelize, transaction: Transaction, events: EventEnvelope[]): Promise<void> {
  if (!events.length) return;
  await sequelize.query('INSERT INTO outbox (id, topic, type, aggregate_id, envelope) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[])', {
    bind: [events.map((e) => e.id), events.map((e) => topicOf(e.type as EventType)), events.map((e) => e.type), events.map((e) => e.aggregateId), events.map((e) => JSON.stringify(e))],
    transaction,
  });
  // An in-process call, not a NOTIFY: a notifying commit serialises with every other one on the
  // server, and a separate NOTIFY statement would cost a round trip per transaction.
  transaction.afterCommit(() => wakers.get(sequelize)?.forEach((wake) => wake()));
}
