import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createEvent } from '../src';
import { createLogger } from '@cloudretail/logging';

export const logger = createLogger({ name: 'events-test', level: (process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent' });

/** A unique topic/group name, so tests never share a stream, topic or consumer group. */
export const uniqueName = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** A valid catalog event; pass an aggregate id to make several events of one aggregate. */
export const stockEvent = (productId: string = randomUUID(), available = 1) => createEvent('StockLevelSet', productId, { productId, available });

/** Retries `assertion` until it stops throwing (or the deadline passes, then rethrows its last error). */
export async function eventually<T>(assertion: () => T | Promise<T>, { timeoutMs = 20_000, intervalMs = 50 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await assertion();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(intervalMs);
    }
  }
}
