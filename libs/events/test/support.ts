import { randomUUID } from 'node:crypto';
import { createEvent, createEventSigning } from '../src';
import { createLogger } from '@cloudretail/logging';

export const logger = createLogger({ name: 'events-test', level: (process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent' });

/** A unique topic/group name, so tests never share a stream, topic or consumer group. */
export const uniqueName = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** A valid catalog event; pass an aggregate id to make several events of one aggregate. */
export const stockEvent = (productId: string = randomUUID(), available = 1) => createEvent('StockLevelSet', productId, { productId, available });

export { eventually } from '@cloudretail/testing';

/** Development signing (keys derived from the default seed), as every process uses without keys. */
export const devSigning = createEventSigning();
