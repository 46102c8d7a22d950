import type { Logger } from '@cloudretail/logging';
import { type Closer, repeat } from '@cloudretail/shutdown';

export interface SweeperOptions {
  intervalMs: number;
  /** Cancels orders past the step timeout; resolves with how many. */
  cancelTimedOut: () => Promise<number>;
  logger: Logger;
}

/**
 * Cancels orders whose saga step outlived SAGA_STEP_TIMEOUT_MS (a service down, an event lost in
 * a DLQ). Every replica runs one; they share the work through `FOR UPDATE SKIP LOCKED`. Runs never
 * overlap within a process, and the closer waits for a run in progress before the pool closes.
 */
export function startSagaTimeoutSweeper({ intervalMs, cancelTimedOut, logger }: SweeperOptions): Closer {
  return repeat('saga-timeout-sweeper', intervalMs, () =>
    cancelTimedOut()
      .then((count) => {
        if (count) logger.warn({ count }, 'cancelled orders whose saga step timed out');
      })
      .catch((error) => logger.error({ err: error }, 'saga timeout sweep failed; retrying next interval')),
  );
}
