import type { Identity } from '@cloudretail/auth';
import { notFound } from '@cloudretail/errors';
import type { OrderStatusRepository, StatusChange } from '../data-access/order-status-repository';
import type { StatusChannel } from '../data-access/status-channel';
import type { OrderStatusRecord } from './order-status';

/** Live order status: recorded from OrderStatusChanged, fanned out to every replica, read by SSE streams. */
export function orderStatusUseCases({ statuses, channel }: { statuses: OrderStatusRepository; channel: StatusChannel }) {
  return {
    /**
     * Records a change and tells every replica. A change that is already the current status is
     * published again: it is a redelivery after a crash between storing and publishing, and
     * listeners drop versions they have already sent. An overtaken (older) change is dropped.
     */
    async recordStatusChange(change: StatusChange): Promise<void> {
      const { record, applied } = await statuses.advance(change);
      if (applied || record.status === change.status) await channel.publish(record);
    },

    /** The current status, for the order's owner or an admin; 404 for anyone else, as for an unknown order. */
    async statusForViewer(orderId: string, viewer: Identity): Promise<OrderStatusRecord> {
      const record = await statuses.find(orderId);
      if (!record || (viewer.role !== 'admin' && record.userId !== viewer.userId)) throw notFound('Order');
      return record;
    },

    latestStatus: (orderId: string) => statuses.find(orderId),
    watch: channel.listen,
  };
}

export type OrderStatusUseCases = ReturnType<typeof orderStatusUseCases>;
