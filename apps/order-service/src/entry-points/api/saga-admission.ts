import { QueryTypes, type Sequelize } from '@cloudretail/db';
import { type RequestHandler, shed } from '@cloudretail/http';
import type { Logger } from '@cloudretail/logging';
import { Gauge, type Registry } from '@cloudretail/metrics';
import { type Closer, repeat } from '@cloudretail/shutdown';

export interface SagaAdmissionOptions {
  sequelize: Sequelize;
  /** New orders are shed while this many sagas (PENDING orders, all replicas) are in flight. */
  maxPending: number;
  /** How often the PENDING orders are counted. */
  intervalMs: number;
  logger: Logger;
  registry: Registry;
}

/**
 * Backpressure for POST /orders. The sagas in flight are counted every `intervalMs` (one indexed
 * count, shared by all replicas through the database); while `maxPending` or more are in flight,
 * a new order is answered 503 with `retry-after` before anything is written. An overloaded
 * checkout then keeps the time to CONFIRMED of the orders it accepted near
 * maxPending ÷ throughput, instead of queueing without bound until sagas time out.
 */
export function sagaAdmission({ sequelize, maxPending, intervalMs, logger, registry }: SagaAdmissionOptions): { guard: RequestHandler; closer: Closer } {
  const gauge = new Gauge({ name: 'saga_pending_orders', help: 'Orders whose saga is in flight (PENDING), as admission control last counted them', registers: [registry] });
  let pending = 0;
  const closer = repeat(
    'saga-admission',
    intervalMs,
    () =>
      sequelize
        .query<{ pending: string }>("SELECT count(*) AS pending FROM orders WHERE status = 'PENDING'", { type: QueryTypes.SELECT })
        .then(([row]) => {
          pending = Number(row.pending);
          gauge.set(pending);
        })
        .catch((error) => logger.warn({ err: error }, 'counting in-flight orders failed; admission keeps its last count')),
    { immediately: true },
  );

  const guard: RequestHandler = (_req, res, next) => {
    if (pending < maxPending) {
      pending += 1; // until the next count: a burst between two counts cannot overshoot by much
      return next();
    }
    shed(res, 'Too many orders in flight; retry shortly');
  };
  return { guard, closer };
}
