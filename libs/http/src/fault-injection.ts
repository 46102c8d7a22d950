import type { RequestHandler } from 'express';
import { AppError } from '@cloudretail/errors';

export interface Faults {
  /** Share of requests (0–1) answered with a 500. */
  errorRate: number;
  /** Latency added to every request. */
  delayMs: number;
}

/**
 * Deliberate faults for deployment drills: a "bad release" that errors or slows down, so that
 * verification and automatic rollback can be proven on real processes. Off (a no-op) by default.
 */
export function faultInjection({ errorRate, delayMs }: Faults): RequestHandler | undefined {
  if (errorRate <= 0 && delayMs <= 0) return undefined;
  return (_req, _res, next) => {
    const fail = Math.random() < errorRate;
    setTimeout(() => next(fail ? new AppError('internal_error', 'Injected fault') : undefined), delayMs);
  };
}
