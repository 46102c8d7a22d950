import type Redis from 'ioredis';
import type { Logger } from '@cloudretail/logging';
import type { OrderStatusRecord } from '../domain/order-status';

/** Someone waiting for an order's status changes (one open SSE stream). */
export interface StatusListener {
  onChange: (record: OrderStatusRecord) => void;
  /** The subscriber connection was lost and is back: changes may have been missed, re-read them. */
  onResync: () => void;
}

/**
 * Fan-out of status changes across replicas over Redis pub/sub: whichever replica consumes a
 * change publishes it on `<prefix>order-status:<orderId>` (prefix: REDIS_KEY_PREFIX), and every replica with a stream open for that
 * order receives it. Each process holds ONE subscriber connection, subscribed to the channels of
 * the orders it currently streams (a channel is dropped with its last listener).
 */
export function statusChannel(redis: Redis, logger: Logger, { prefix = '' }: { prefix?: string } = {}) {
  const channelOf = (orderId: string) => `${prefix}order-status:${orderId}`;
  const listeners = new Map<string, Set<StatusListener>>();
  let subscriber: Redis | undefined;
  let readyBefore = false;

  function connection(): Redis {
    if (subscriber) return subscriber;
    subscriber = redis.duplicate({ connectionName: 'event-bus:status-subscriber' });
    subscriber.on('error', (error) => logger.warn({ err: error }, 'status subscriber connection error'));
    subscriber.on('ready', () => {
      // ioredis re-subscribes by itself after a reconnect; what was published meanwhile is lost.
      if (readyBefore) for (const set of listeners.values()) for (const listener of set) listener.onResync();
      readyBefore = true;
    });
    subscriber.on('message', (channel: string, message: string) => {
      const set = listeners.get(channel);
      if (!set) return;
      let record: OrderStatusRecord;
      try {
        record = JSON.parse(message) as OrderStatusRecord;
      } catch (error) {
        logger.warn({ err: error, channel }, 'ignored a malformed status message');
        return;
      }
      for (const listener of set) listener.onChange(record);
    });
    return subscriber;
  }

  return {
    /**
     * Tells every replica's listeners of this order about a change that is already stored. Never
     * rejects: a failure is logged, and listeners catch up by re-reading the stored status (after
     * their subscriber reconnects, or when their client reconnects with Last-Event-ID).
     */
    async publish(record: OrderStatusRecord): Promise<void> {
      await redis
        .publish(channelOf(record.orderId), JSON.stringify(record))
        .catch((error: Error) => logger.warn({ err: error, orderId: record.orderId, version: record.version }, 'status publish failed'));
    },

    /** Resolves once the subscription is active; the returned function removes the listener. */
    async listen(orderId: string, listener: StatusListener): Promise<() => Promise<void>> {
      const channel = channelOf(orderId);
      const set = listeners.get(channel) ?? new Set();
      listeners.set(channel, set);
      set.add(listener);
      const remove = async () => {
        if (!set.delete(listener) || set.size > 0 || listeners.get(channel) !== set) return;
        listeners.delete(channel);
        await connection()
          .unsubscribe(channel)
          .catch((error: Error) => logger.warn({ err: error, channel }, 'unsubscribe failed'));
      };
      // Commands on one connection run in order, so a racing UNSUBSCRIBE of the previous last
      // listener cannot undo this SUBSCRIBE.
      try {
        await connection().subscribe(channel);
      } catch (error) {
        await remove();
        throw error;
      }
      return remove;
    },

    /** Open listeners in this process (also the `event_sse_streams` gauge). */
    listenerCount(): number {
      let count = 0;
      for (const set of listeners.values()) count += set.size;
      return count;
    },

    async close(): Promise<void> {
      listeners.clear();
      if (subscriber?.status === 'ready') await subscriber.quit().catch(() => subscriber?.disconnect());
      else subscriber?.disconnect();
    },
  };
}

export type StatusChannel = ReturnType<typeof statusChannel>;
