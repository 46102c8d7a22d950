import type { Logger } from '@cloudretail/logging';
import { Counter, type Metrics } from '@cloudretail/metrics';
import { type Closer, repeat } from '@cloudretail/shutdown';

export interface SweeperOptions {
  intervalMs: number;
  /** Releases expired reservations; resolves with how many. */
  releaseExpired: () => Promise<number>;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Releases reservations nobody committed in time. Every replica runs one; they share the work
 * through `FOR UPDATE SKIP LOCKED`, so no leader election is needed. Runs never overlap within a
 * process, and the returned closer waits for a run in progress before the pool closes.
 */
export function startReservationSweeper({ intervalMs, releaseExpired, logger, metrics }: SweeperOptions): Closer {
  const expired = new Counter({ name: 'inventory_reservations_expired_total', help: 'Reservations released by the sweeper because they expired', registers: [metrics.registry] });
  return repeat('reservation-sweeper', intervalMs, () =>
    releaseExpired()
      .then((count) => {
        if (count) logger.info({ count }, 'released expired reservations');
        expired.inc(count);
      })
      .catch((error) => logger.error({ err: error }, 'reservation sweep failed; retrying next interval')),
  );
}
