import type { Db, Tx } from '@cloudretail/db';
import { repeat } from '@cloudretail/shutdown';
import { jitteredBackoff } from './backoff';
import { onOutboxCommit } from './outbox';
import type { Logger } from '@cloudretail/logging';
import type { EventEnvelope } from './envelope';
import type { Transport } from './transport';

/** How far below the highest seq claimed a round starts, and how often a round starts at 0 (see `fromSeq`). */
const SEQ_MARGIN = 1_000;
const FULL_SCAN_MS = 1_000;

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
  seq: string;
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
  /**
   * Claims pending rows in `seq` order and marks them published, in one statement; the round's
   * transaction holds them while they are published, and a row that could not be published is
   * unmarked before the commit. Resolves the rows to publish now, and whether the claim was full
   * (so more may be waiting).
   */
  async function claim(tx: Tx, fromSeq: number): Promise<{ rows: Row[]; full: boolean }> {
    // `busy`: a pending row of the same aggregate, earlier in seq order, that we did not get is held
    // by another relay: leave that aggregate to it, or its events could overtake each other.
    // The check walks outbox_pending_aggregate (one index probe per row), not every pending row.
    // Every part of the statement sees the outbox as it was before the UPDATE.
    const rows = await tx.query<Row & { claimed: string }>(
      `WITH claimed AS (
         SELECT id, seq, aggregate_id FROM outbox WHERE published_at IS NULL AND seq >= $2 ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
       ), busy AS (
         SELECT c.aggregate_id FROM claimed c CROSS JOIN LATERAL (
           SELECT 1 FROM outbox e WHERE e.aggregate_id = c.aggregate_id AND e.published_at IS NULL AND e.seq < c.seq AND e.id NOT IN (SELECT id FROM claimed) LIMIT 1
         ) earlier
       ), marked AS (
         UPDATE outbox o SET published_at = now() FROM claimed c
         WHERE o.id = c.id AND c.aggregate_id NOT IN (SELECT aggregate_id FROM busy)
         RETURNING o.id, o.seq, o.topic, o.aggregate_id, o.envelope
       )
       SELECT id, seq, topic, aggregate_id, envelope, (SELECT count(*) FROM claimed) AS claimed FROM marked ORDER BY seq`,
      [batchSize, fromSeq],
    );
    return { rows, full: rows.length > 0 && Number(rows[0].claimed) >= batchSize };
  }

  /**
   * Where a round's claim starts. Published rows leave dead entries at the head of the pending
   * index until a vacuum; a claim that starts at the beginning walks all of them (milliseconds per
   * round after a few thousand events). So most rounds start a little below the highest seq this
   * relay has claimed: a row numbered earlier that commits late (a "straggler") is still found,
   * unless it is more than SEQ_MARGIN behind. Every FULL_SCAN_MS a round starts at 0 and finds
   * those too. Order per aggregate holds either way: the busy check looks at every pending row.
   */
  let highestSeq = 0;
  let lastFullScan = 0;
  const fromSeq = () => {
    if (Date.now() - lastFullScan < FULL_SCAN_MS) return Math.max(0, highestSeq - SEQ_MARGIN);
    lastFullScan = Date.now();
    return 0;
  };

  async function runOnce(): Promise<RelayRound> {
    return db.transaction(async (tx) => {
      const { rows: claimed, full } = await claim(tx, fromSeq());
      for (const row of claimed) highestSeq = Math.max(highestSeq, Number(row.seq));
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
          // This run and everything after it are pending again (the run counts an attempt).
          logger.warn({ err: error, topic, pending: claimed.length - published }, 'outbox publish failed; will retry');
          await tx.execute(
            `UPDATE outbox SET published_at = NULL, attempts = attempts + CASE WHEN id = ANY($2) THEN 1 ELSE 0 END,
               last_error = CASE WHEN id = ANY($2) THEN $3 ELSE last_error END
             WHERE id = ANY($1)`,
            [claimed.slice(published).map((r) => r.id), run.map((r) => r.id), String((error as Error).message ?? error)],
          );
          break;
        }
        published = end;
      }
      const failed = published < claimed.length;
      // Another round at once only after a full claim: rows committed since this one wake the relay
      // themselves, so an empty confirming round after every round would be a transaction for nothing.
      return { published, failed, more: !failed && full };
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
