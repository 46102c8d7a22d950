import type { Db, Tx } from '@cloudretail/db';
import type { Closer } from '@cloudretail/shutdown';
import { type EventType, topicOf } from './catalog';
import type { EventEnvelope, EventOf, PayloadOf } from './envelope';
import { claimInbox } from './inbox';
import type { RetryPolicy, Transport } from './transport';

/** What a consumer does with each event type it handles: typed by the catalog, in the batch's transaction. */
export type EventHandlers = { [T in EventType]?: (payload: PayloadOf<T>, tx: Tx, event: EventOf<T>) => Promise<unknown> };

export interface ConsumerOptions extends RetryPolicy {
  transport: Transport;
  db: Db;
  /** Consumer group, and the inbox's key: every group gets every event once. */
  group: string;
  handlers: EventHandlers;
  /**
   * Runs first in each batch's transaction with the events about to be handled (new to this group),
   * e.g. to lock every row the batch will touch in one fixed order, so batches of two replicas
   * cannot deadlock each other.
   */
  prepare?: (events: EventEnvelope[], tx: Tx) => Promise<void>;
  /**
   * Events of a handled type that this consumer can tell from the event alone it has nothing to do
   * with: acknowledged without a transaction or an inbox row.
   */
  ignore?: (event: EventEnvelope) => boolean;
  /** Stable name of this consumer within the group (defaults to host and pid). */
  consumerName?: string;
}

/**
 * The one way to consume events. A consumer declares handlers per event type; it is subscribed to
 * the topics those types travel on, and the transport skips every other type unread. A run of
 * messages read together is handled in one transaction: one multi-row inbox insert (events
 * already handled by this group are skipped), the handlers in stream order, the outbox events they
 * wrote in one insert (see `enqueue`), one commit. A failed batch is retried event by event, each in
 * its own transaction under the retry policy, so a poison event is dead-lettered alone and its
 * neighbours are neither blocked nor redone. One aggregate's events are handled in order.
 *
 * A handler that decides an event changes nothing must return without writing rather than throw:
 * a throw rolls back the whole batch (then every event of it is handled on its own).
 */
export async function startConsumer({ transport, db, group, handlers, prepare, ignore, consumerName, ...policy }: ConsumerOptions): Promise<Closer> {
  const types = Object.keys(handlers) as EventType[];
  const handlerOf = (type: string) => (handlers as Record<string, (payload: unknown, tx: Tx, event: EventEnvelope) => Promise<unknown>>)[type];

  const handleBatch = async (events: EventEnvelope[]) => {
    const ours = events.filter((e) => handlerOf(e.type) && !ignore?.(e));
    if (!ours.length) return;
    await db.transaction(async (tx) => {
      const fresh = await claimInbox(tx, group, ours.map((e) => e.id));
      const todo = ours.filter((e) => fresh.delete(e.id)); // a message read twice in one batch is handled once
      if (!todo.length) return;
      await prepare?.(todo, tx);
      for (const event of todo) await handlerOf(event.type)(event.payload, tx, event);
    });
  };

  const subscription = await transport.subscribe({
    group,
    topics: [...new Set(types.map(topicOf))],
    types,
    consumerName,
    handleBatch,
    handle: (event) => handleBatch([event]),
    ...policy,
  });
  return { name: `${group}-consumer`, close: () => subscription.stop() };
}
