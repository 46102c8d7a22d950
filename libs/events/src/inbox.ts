import type { Migration, Tx } from '@cloudretail/db';

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
 * Records `eventIds` as handled by `group` in the caller's transaction, in one statement, and
 * resolves the ids that were new: only those are handled. The rows commit with the handlers'
 * writes, so a redelivered or replayed event is skipped, and a rolled-back batch leaves no row (the
 * retry handles it again). A concurrent duplicate waits on the row lock, then is skipped.
 */
export async function claimInbox(tx: Tx, group: string, eventIds: string[]): Promise<Set<string>> {
  const rows = await tx.query<{ event_id: string }>(
    'INSERT INTO inbox (consumer_group, event_id) SELECT $1, id FROM unnest($2::uuid[]) AS id ON CONFLICT DO NOTHING RETURNING event_id',
    [group, eventIds],
  );
  return new Set(rows.map((r) => r.event_id));
}
