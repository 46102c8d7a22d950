import { QueryTypes, type Migration, type Sequelize, type Transaction } from '@cloudretail/db';
import type { EventEnvelope } from './envelope';

/** The inbox table: which events each consumer group has already handled. Add it to a consuming service's migrations. */
export const inboxMigration: Migration = {
  name: '000-create-inbox',
  up: ({ sql }) =>
    sql(`
      CREATE TABLE IF NOT EXISTS inbox (
        consumer_group text NOT NULL,
        event_id uuid NOT NULL,
        processed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (consumer_group, event_id)
      )
    `),
  down: ({ sql }) => sql('DROP TABLE IF EXISTS inbox'),
};

/**
 * Runs `fn` at most once per (group, event): the inbox row and `fn`'s writes commit in one
 * transaction, so a redelivered or replayed event is skipped, and a failed `fn` leaves no inbox
 * row (the retry runs it again). A concurrent duplicate waits on the row lock, then is skipped.
 * Resolves true when `fn` ran, false for a duplicate.
 */
export async function handleOnce(sequelize: Sequelize, group: string, event: Pick<EventEnvelope, 'id'>, fn: (transaction: Transaction) => Promise<void>): Promise<boolean> {
  return sequelize.transaction(async (transaction) => {
    const inserted = await sequelize.query('INSERT INTO inbox (consumer_group, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING event_id', {
      bind: [group, event.id],
      transaction,
      type: QueryTypes.SELECT,
    });
    if (!inserted.length) return false;
    await fn(transaction);
    return true;
  });
}
