import type { RequestHandler, Response } from 'express';
import { AppError } from '@cloudretail/errors';

export interface ShedLoadOptions {
  /** Requests the route works on at once. */
  concurrency: number;
  /** Requests that may wait for a turn (first come, first served); beyond that they are shed. */
  queue: number;
  /** What a shed request's `retry-after` says. */
  retryAfterSeconds?: number;
}

/**
 * Answers `503 service_unavailable` with `retry-after`: the request was turned away before it did
 * anything. Shedding is the system working as designed under overload, so it is not logged per
 * request (that would add work exactly when there is too much); `http_requests_total{status="503"}`
 * counts it.
 */
export function shed(res: Response, message: string, retryAfterSeconds = 1): void {
  res.setHeader('retry-after', String(retryAfterSeconds));
  res.status(503).json(new AppError('service_unavailable', message).toJSON());
}

/**
 * Bounds the work a route takes on: up to `concurrency` requests run, up to `queue` more wait, and
 * the next one is answered `503 service_unavailable` with `retry-after` at once, before it has
 * done anything (so a retry, e.g. with the same Idempotency-Key, is always safe). Under overload
 * the process then keeps its database connections and event loop for work it has already
 * accepted (its event consumers, the requests in hand) instead of queueing without bound.
 * A waiting request whose client goes away leaves the queue.
 */
export function shedLoad({ concurrency, queue, retryAfterSeconds = 1 }: ShedLoadOptions): RequestHandler {
  let active = 0;
  const waiting: (() => void)[] = [];
  /** A finished request hands its slot to the first waiting one, or frees it. */
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active -= 1;
  };
  return (_req, res, next) => {
    if (active < concurrency) {
      active += 1;
      res.once('close', release);
      return next();
    }
    if (waiting.length >= queue) return shed(res, 'The service is at capacity; retry shortly', retryAfterSeconds);
    const leave = () => {
      const at = waiting.indexOf(turn);
      if (at >= 0) waiting.splice(at, 1);
    };
    const turn = () => {
      res.off('close', leave);
      res.once('close', release);
      next();
    };
    res.once('close', leave);
    waiting.push(turn);
  };
}
