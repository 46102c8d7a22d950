import type { Db } from '@cloudretail/db';
import { type RequestHandler, shed } from '@cloudretail/http';
import type { Logger } from '@cloudretail/logging';
import { Gauge, type Registry } from '@cloudretail/metrics';
import { type Closer, repeat } from '@cloudretail/shutdown';

export interface SagaAdmissionOptions {
  db: Db;
  /** The time from POST /orders to a final status that admission aims to keep (Little's law). */
  targetLatencyMs: number;
  /** Always admitted up to this many sagas in flight, so an idle system takes work and so measures its throughput. */
  minPending: number;
  /** Never more sagas in flight than this, whatever the measured throughput. */
  maxPending: number;
  /** Throughput is the sagas finished over this trailing window: a moving average that does not flap. */
  windowMs: number;
  /** How often the sagas in flight and the finished ones are counted. */
  intervalMs: number;
  logger: Logger;
  registry: Registry;
}

export interface SagaAdmission {
  guard: RequestHandler;
  closer: Closer;
  /** Counts again now (the timer does this every `intervalMs`); resolves once the new limit applies. */
  refresh: () => Promise<void>;
}

/** What one count found, and the limit it gives. */
interface Measure {
  pending: number;
  /** Sagas finished per second, all replicas. */
  rate: number;
  limit: number;
}

/**
 * Backpressure for POST /orders that aims at a latency, not a count. By Little's law the sagas in
 * flight are throughput × time in flight, so keeping at most `rate × targetLatencyMs` in flight
 * keeps the time to a final status of the orders accepted near the target, whatever the deployment
 * sustains today. Every `intervalMs` one statement counts the PENDING orders and those that left
 * PENDING within `windowMs` (both indexed, shared by all replicas through the database). The limit
 * is clamped to [minPending, maxPending]; at or above it a new order is answered 503 before
 * anything is written, with `retry-after` = the time the measured rate needs to make room.
 *
 * It assumes a saga's own work is well under the target (the rest is queueing): a saga that alone
 * takes longer than the target caps throughput at minPending ÷ its duration.
 */
export function sagaAdmission({ db, targetLatencyMs, minPending, maxPending, windowMs, intervalMs, logger, registry }: SagaAdmissionOptions): SagaAdmission {
  const pendingGauge = new Gauge({ name: 'saga_pending_orders', help: 'Orders whose saga is in flight (PENDING), as admission control last counted them', registers: [registry] });
  const limitGauge = new Gauge({ name: 'saga_admission_limit', help: 'Sagas in flight (all replicas) at which POST /orders is shed: finish rate × target latency, clamped', registers: [registry] });
  const windowSeconds = windowMs / 1000;
  let measure: Measure = { pending: 0, rate: 0, limit: Math.min(minPending, maxPending) };

  // The rate is over the time the window's finished sagas span (at least a second), not the whole
  // window: after an idle spell (a start, a deploy) the limit follows the new throughput within a
  // second instead of ramping up over the window.
  const count = () =>
    db
      .query<{ pending: string; finished: string; seconds: number }>(
        `SELECT (SELECT count(*) FROM orders WHERE status = 'PENDING') AS pending, f.finished,
                least($2::float8, greatest(1, extract(epoch FROM now() - f.oldest)::float8)) AS seconds
         FROM (SELECT count(*) AS finished, min(updated_at) AS oldest FROM orders WHERE status <> 'PENDING' AND updated_at > now() - $1 * interval '1 millisecond') f`,
        [windowMs, windowSeconds],
      )
      .then(([row]) => {
        const rate = Number(row.finished) / Number(row.seconds ?? windowSeconds);
        const limit = Math.min(maxPending, Math.max(minPending, Math.floor((rate * targetLatencyMs) / 1000)));
        measure = { pending: Number(row.pending), rate, limit };
        pendingGauge.set(measure.pending);
        limitGauge.set(limit);
      })
      .catch((error) => logger.warn({ err: error }, 'counting sagas failed; admission keeps its last limit'));

  let running: Promise<void> | undefined;
  const refresh = () =>
    (running ??= count().finally(() => {
      running = undefined;
    }));
  const closer = repeat('saga-admission', intervalMs, refresh, { immediately: true });

  /** Seconds until the measured rate has finished enough sagas to make room; unknown (nothing finishing): the window. */
  const retryAfter = ({ pending, rate, limit }: Measure) => {
    const seconds = rate > 0 ? Math.ceil((pending - limit + 1) / rate) : Infinity;
    return Math.max(1, Math.min(seconds, Math.ceil(windowSeconds)));
  };

  const guard: RequestHandler = (_req, res, next) => {
    if (measure.pending < measure.limit) {
      measure.pending += 1; // until the next count: a burst between two counts cannot overshoot by much
      return next();
    }
    shed(res, 'Too many orders in flight; retry shortly', retryAfter(measure));
  };
  return { guard, closer, refresh };
}
