import type { Migration, Tx } from '@cloudretail/db';
import { type EventType, topicOf } from './catalog';
import type { EventEnvelope } from './envelope';

/**
 * The transactional outbox table. Add these migrations to a service's list, then write events with
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

/** The relay's "is an earlier row of this aggregate held elsewhere" check, by index instead of a scan of every pending row. */
export const outboxAggregateIndexMigration: Migration = {
  name: '000-outbox-pending-by-aggregate',
  up: ({ sql }) => sql('CREATE INDEX IF NOT EXISTS outbox_pending_aggregate ON outbox (aggregate_id, seq) WHERE published_at IS NULL'),
  down: ({ sql }) => sql('DROP INDEX IF EXISTS outbox_pending_aggregate'),
};

/** Both outbox migrations, in order: what a producing service adds to its list. */
export const outboxMigrations = [outboxMigration, outboxAggregateIndexMigration];

const wakers = new Set<() => void>();

/**
 * Calls `wake` after each commit, in this process, of a transaction that wrote outbox rows (the
 * relay publishes them at once instead of at its next poll). Returns the unsubscribe function.
 * Rows written by another process are found by its own relay or by the poll.
 */
export function onOutboxCommit(wake: () => void): () => void {
  wakers.add(wake);
  return () => wakers.delete(wake);
}

const pending = new WeakMap<Tx, EventEnvelope[]>();

/**
 * Writes events to the outbox in the caller's transaction: they exist if and only if the change
 * commits. Every event a transaction enqueues goes out in one multi-row INSERT just before its
 * commit, so a consumer's batch of N events costs one outbox statement, not N.
 */
export function enqueue(tx: Tx, events: EventEnvelope[]): void {
  if (!events.length) return;
  const queued = pending.get(tx);
  if (queued) {
    queued.push(...events);
    return;
  }
  const all = [...events];
  pending.set(tx, all);
  tx.beforeCommit(async () => {
    pending.delete(tx);
    await tx.execute('INSERT INTO outbox (id, topic, type, aggregate_id, envelope) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[])', [
      all.map((e) => e.id),
      all.map((e) => topicOf(e.type as EventType)),
      all.map((e) => e.type),
      all.map((e) => e.aggregateId),
      all.map((e) => JSON.stringify(e)),
    ]);
  });
  // An in-process call, not a NOTIFY: a notifying commit serialises with every other one on the
  // server, and a separate NOTIFY statement would cost a round trip per transaction.
  tx.afterCommit(() => wakers.forEach((wake) => wake()));
}
