import type { Identity } from '@cloudretail/auth';
import type { Tx } from '@cloudretail/db';
import { notFound } from '@cloudretail/errors';
import type { OrderStatusRepository, StatusChange } from '../data-access/order-status-repository';
import type { StatusChannel } from '../data-access/status-channel';
import type { OrderStatusRecord } from './order-status';

/** Live order status: recorded from the order facts, fanned out to every replica, read by SSE streams. */
export function orderStatusUseCases({ statuses, channel }: { statuses: OrderStatusRepository; channel: StatusChannel }) {
  /** The first status of an order, as soon as one is recorded (by any replica), or null after `waitMs`. */
  async function firstStatus(orderId: string, waitMs: number): Promise<OrderStatusRecord | null> {
    let arrived: (record: OrderStatusRecord | null) => void = () => undefined;
    const first = new Promise<OrderStatusRecord | null>((resolve) => (arrived = resolve));
    const reread = () => void statuses.find(orderId).then((r) => r && arrived(r), () => undefined);
    const stop = await channel.listen(orderId, { onChange: arrived, onResync: reread });
    const timer = setTimeout(() => arrived(null), waitMs);
    try {
      // Subscribed first, read second: a status recorded in between is found by this read.
      return (await statuses.find(orderId)) ?? (await first) ?? (await statuses.find(orderId));
    } finally {
      clearTimeout(timer);
      await stop();
    }
  }

  return {
    /**
     * Records a change in `tx` and tells every replica once it has committed (a listener re-reading
     * the stored status must find at least the version it was told about). A change that is
     * already the current status is published again: the same status reached us twice (a fact and
     * the OrderStatusChanged of an older release), and listeners drop versions they have already
     * sent. An overtaken (older) change is dropped.
     */
    async recordStatusChange(change: StatusChange, tx: Tx): Promise<void> {
      const { record, applied } = await statuses.advance(change, tx);
      if (applied || record.status === change.status) tx.afterCommit(() => void channel.publish(record));
    },

    /** Run first in a transaction that records changes of several orders (see the repository). */
    lockOrders: (orderIds: string[], tx: Tx) => statuses.lockOrders(orderIds, tx),

    /**
     * The current status, for the order's owner or an admin; 404 for anyone else, as for an
     * unknown order. An order placed a moment ago may not have reached this read model yet (its
     * first status travels outbox → backbone → consumer): then wait up to `waitMs` for it, so a
     * client's natural first call right after `POST /orders` works.
     */
    async statusForViewer(orderId: string, viewer: Identity, { waitMs = 0 }: { waitMs?: number } = {}): Promise<OrderStatusRecord> {
      const record = (await statuses.find(orderId)) ?? (waitMs > 0 ? await firstStatus(orderId, waitMs) : null);
      if (!record || (viewer.role !== 'admin' && record.userId !== viewer.userId)) throw notFound('Order');
      return record;
    },

    latestStatus: (orderId: string) => statuses.find(orderId),
    watch: channel.listen,
  };
}

export type OrderStatusUseCases = ReturnType<typeof orderStatusUseCases>;
