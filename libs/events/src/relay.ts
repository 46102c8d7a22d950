import type { Db, Tx } from '@cloudretail/db';
import { repeat } from '@cloudretail/shutdown';
import { jitteredBackoff } from './backoff';
import { onOutboxCommit } from './outbox';
import type { Logger } from '@cloudretail/logging';
import type { EventEnvelope } from './envelope';
import type { Transport } from './transport';

export interface OutboxRelayOptions {
  db: Db;
  transport: Transport;
  logger: Logger;
  /** Pause between rounds when the outbox is empty. */
  pollMs?: number;
  /** Rows claimed per round. */
  batchSize?: number;
  /** Ceiling of the backoff after failed rounds. */
  maxBackoffMs?: number;
  /** How long a wake-up after a commit waits before its round, so the commits of a burst share one round. */
  wakeDelayMs?: number;
  /** Published rows are deleted this long after publishing (they hold payment tokens; nothing reads them again). */
  retentionHours?: number;
  /** How often published rows past `retentionHours` are swept. */
  sweepIntervalMs?: number;
}

export interface RelayRound {
  published: number;
  /** True when the round stopped at a row the transport refused (it stays pending). */
  failed: boolean;
  /** True when there may be more rows to publish right away. */
  more: boolean;
}

export interface OutboxRelay {
  /** One round: claim pending rows, publish them in order, mark them published. */
  runOnce(): Promise<RelayRound>;
  /** Deletes published rows older than the retention; resolves the number deleted. */
  sweep(): Promise<number>;
  /** Stops polling and sweeping, and waits for a round or sweep in progress. */
  stop(): Promise<void>;
}

interface Row {
  id: string;
  topic: string;
  aggregate_id: string;
  envelope: EventEnvelope;
}

/**
 * Publishes outbox rows to the transport. Rows are claimed in `seq` order with
 * `FOR UPDATE SKIP LOCKED`, so replicas share the work without publishing a row twice. Delivery is
 * at least once (a crash after publishing and before marking republishes); consumers dedupe with
 * the inbox (startConsumer).
 */
export function startOutboxRelay({
  db,
  transport,
  logger,
  pollMs = 500,
  batchSize = 100,
  maxBackoffMs = 30_000,
  wakeDelayMs = 5,
  retentionHours = 24,
  sweepIntervalMs = 15 * 60_000,
}: OutboxRelayOptions): OutboxRelay {
  async function claim(tx: Tx): Promise<Row[]> {
    // `busy`: a pending row of the same aggregate, earlier in seq order, that we did not get is held
    // by another relay: leave that aggregate to it, or its events could overtake each other.
    // The check walks outbox_pending_aggregate (one index probe per row), not every pending row.
    const rows = await tx.query<Row & { busy: boolean }>(
      `WITH claimed AS (
         SELECT id, seq, topic, aggregate_id, envelope FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
       )
       SELECT id, topic, aggregate_id, envelope, EXISTS (
         SELECT 1 FROM outbox e WHERE e.published_at IS NULL AND e.aggregate_id = c.aggregate_id AND e.seq < c.seq AND e.id NOT IN (SELECT id FROM claimed)
       ) AS busy
       FROM claimed c ORDER BY seq`,
      [batchSize],
    );
    const skip = new Set(rows.filter((r) => r.busy).map((r) => r.aggregate_id));
    return rows.filter((r) => !skip.has(r.aggregate_id));
  }

  async function runOnce(): Promise<RelayRound> {
    return db.transaction(async (tx) => {
      const claimed = await claim(tx);
      let published = 0;
      // Consecutive rows of one topic go out in one publish call, in seq order.
      while (published < claimed.length) {
        const topic = claimed[published].topic;
        let end = published;
        while (end < claimed.length && claimed[end].topic === topic) end += 1;
        const run = claimed.slice(published, end);
        try {
          await transport.publish(topic, run.map((r) => r.envelope));
        } catch (error) {
          // Stop at the first failure: a later row of the same aggregate must not go out first.
          logger.warn({ err: error, topic, pending: claimed.length - published }, 'outbox publish failed; will retry');
          await tx.execute('UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1)', [run.map((r) => r.id), String((error as Error).message ?? error)]);
          break;
        }
        published = end;
      }
      // One mark for everything published this round (it commits with the claim).
      if (published) await tx.execute('UPDATE outbox SET published_at = now() WHERE id = ANY($1)', [claimed.slice(0, published).map((r) => r.id)]);
      const failed = published < claimed.length;
      return { published, failed, more: !failed && claimed.length > 0 };
    });
  }

  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<unknown> = Promise.resolve();
  let failures = 0;
  let running = false;
  let woken = false;
  let wakeScheduled = false;

  // Wake-ups are coalesced: the first one brings the next round forward to `wakeDelayMs` from now,
  // later ones before it starts change nothing, so a burst of commits costs one round, not one each.
  function wake() {
    if (stopped) return;
    if (running) woken = true;
    else if (!wakeScheduled) {
      clearTimeout(timer);
      schedule(wakeDelayMs);
      wakeScheduled = true;
    }
  }

  function schedule(delayMs: number) {
    if (stopped) return;
    wakeScheduled = false;
    timer = setTimeout(() => {
      running = true;
      woken = false;
      current = runOnce()
        .catch((error) => {
          logger.error({ err: error }, 'outbox relay round failed'); // database down: same backoff
          return { failed: true, more: false };
        })
        .then(({ failed, more }) => {
          running = false;
          failures = failed ? failures + 1 : 0;
          if (failed) schedule(jitteredBackoff(failures, pollMs, maxBackoffMs)); // jitter: replicas' relays do not retry in step
          else if (more) schedule(0);
          else if (woken) {
            schedule(wakeDelayMs);
            wakeScheduled = true;
          } else schedule(pollMs);
        });
    }, delayMs);
  }
  // `enqueue` wakes the relay right after the writer's transaction commits.
  const unsubscribe = onOutboxCommit(wake);
  schedule(0);

  async function sweep(): Promise<number> {
    let deleted = 0;
    // In slices, so no statement holds many row locks or runs long; every replica may sweep (deleting is idempotent).
    for (;;) {
      const count = await db.execute(
        `DELETE FROM outbox WHERE id IN (
           SELECT id FROM outbox WHERE published_at < now() - make_interval(secs => $1) LIMIT 5000 FOR UPDATE SKIP LOCKED
         )`,
        [retentionHours * 3600],
      );
      deleted += count;
      if (count < 5000) return deleted;
    }
  }
  const sweeper = repeat('outbox-retention', sweepIntervalMs, () =>
    sweep().then(
      (deleted) => void (deleted && logger.info({ deleted, retentionHours }, 'deleted published outbox rows past retention')),
      (error: unknown) => logger.warn({ err: error }, 'outbox retention sweep failed; next sweep retries'),
    ),
  );

  return {
    runOnce,
    sweep,
    async stop() {
      stopped = true;
      unsubscribe();
      clearTimeout(timer);
      await Promise.all([current, sweeper.close()]);
    },
  };
}
