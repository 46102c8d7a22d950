import type { Request, RequestHandler, Response } from 'express';
import { identityOf } from '@cloudretail/auth';
import { AppError } from '@cloudretail/errors';
import type { Logger } from '@cloudretail/logging';
import type { StreamSlots } from '../../data-access/stream-slots';
import { type OrderStatusRecord, isFinal, toStatusEvent } from '../../domain/order-status';
import type { OrderStatusUseCases } from '../../domain/order-status-use-cases';

/** The open streams of one service instance, so shutdown can end them instead of waiting for them. */
export function openStreams() {
  const streams = new Set<() => void>();
  return {
    add: (end: () => void) => streams.add(end),
    delete: (end: () => void) => streams.delete(end),
    get size() {
      return streams.size;
    },
    /** Ends every stream; EventSource clients reconnect (with Last-Event-ID) to a replica still serving. */
    endAll: () => [...streams].forEach((end) => end()),
  };
}
export type OpenStreams = ReturnType<typeof openStreams>;

/**
 * Browsers' EventSource cannot set headers, so the SSE route also takes the token as
 * `?access_token=` (a header wins when both are present). Only this route accepts it.
 */
export const tokenFromQuery: RequestHandler = (req, _res, next) => {
  const token = req.query['access_token'];
  if (!req.headers.authorization && typeof token === 'string' && token) req.headers.authorization = `Bearer ${token}`;
  next();
};

const lastEventIdOf = (req: Request) => {
  const id = Number(req.header('last-event-id'));
  return Number.isSafeInteger(id) && id > 0 ? id : 0;
};

export interface StreamLimits {
  heartbeatMs: number;
  /** The stream is closed after this long, with a `retry:` hint of `reconnectMs`. */
  maxLifetimeMs: number;
  reconnectMs: number;
  /** How long to wait for the first status of an order the read model has not seen yet. */
  firstStatusWaitMs: number;
}

/**
 * `GET /orders/:id/events`: the current status at once, then every change, as Server-Sent
 * Events; the stream ends after the first final status. The event id is the status version, so a
 * reconnecting client (Last-Event-ID) is not sent a status it already has. Bounded: a user holds
 * at most `slots.limit` streams (429 beyond), and a stream lives at most `maxLifetimeMs`.
 */
export function streamOrderEvents({ useCases, slots, streams, limits, logger }: { useCases: OrderStatusUseCases; slots: StreamSlots; streams: OpenStreams; limits: StreamLimits; logger: Logger }) {
  const { heartbeatMs, maxLifetimeMs, reconnectMs, firstStatusWaitMs } = limits;
  return async (orderId: string, req: Request, res: Response): Promise<void> => {
    const viewer = identityOf(req);
    // Taken before the wait below, so that waiting requests count too.
    const slot = await slots.acquire(viewer.userId).catch((error: unknown) => {
      throw new AppError('service_unavailable', 'Live order status is unavailable right now; fetch the order instead', undefined, { cause: error });
    });
    if (!slot) throw new AppError('rate_limited', `At most ${slots.limit} order status streams may be open at once per user`, { limit: slots.limit });
    let current: OrderStatusRecord;
    try {
      current = await useCases.statusForViewer(orderId, viewer, { waitMs: firstStatusWaitMs }); // 404 before a byte of stream is sent
    } catch (error) {
      await slot.release();
      throw error;
    }

    // Versions are stored before they are published, so an id above the stored one was never
    // sent by us: ignore it rather than withhold every status up to it (the stream would never end).
    const lastEventId = lastEventIdOf(req);
    let sentVersion = lastEventId > current.version ? 0 : lastEventId;
    if (isFinal(current.status) && sentVersion >= current.version) {
      // The client already has the final status. 204 is what makes EventSource stop reconnecting.
      await slot.release();
      res.status(204).end();
      return;
    }

    let open = false; // headers sent; a change arriving earlier is picked up by the first read
    let ended = false;
    const heartbeat = setInterval(() => {
      if (!open) return;
      res.write(': ping\n\n');
      slot.renew().catch((error) => logger.warn({ err: error, orderId }, 'stream slot renewal failed'));
    }, heartbeatMs); // cleared by end(), which 'close' always runs
    const lifetime = setTimeout(() => {
      if (open) res.write(`retry: ${reconnectMs}\n\n`); // reconnect (with Last-Event-ID) to a fresh stream
      end();
    }, maxLifetimeMs);
    let unwatch = async () => undefined as void;

    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      clearTimeout(lifetime);
      streams.delete(end);
      void unwatch();
      slot.release().catch((error) => logger.warn({ err: error, orderId }, 'stream slot release failed'));
      res.end();
    };
    // Versions only grow, so a change seen twice (pub/sub and the re-read below) is sent once.
    // A final status ends the stream even when its event was already sent.
    const send = (record: OrderStatusRecord) => {
      if (!open || ended) return;
      if (record.version > sentVersion) {
        sentVersion = record.version;
        res.write(`id: ${record.version}\nevent: status\ndata: ${JSON.stringify(toStatusEvent(record))}\n\n`);
      }
      if (isFinal(record.status)) end();
    };
    const sendLatest = async () => {
      const latest = await useCases.latestStatus(orderId);
      if (latest) send(latest);
    };

    res.on('close', end); // the client went away
    // Subscribe first, read second: a change landing in between arrives one way or the other.
    try {
      unwatch = await useCases.watch(orderId, {
        onChange: send,
        onResync: () => void sendLatest().catch((error) => logger.warn({ err: error, orderId }, 'status re-read failed')),
      });
    } catch (error) {
      end();
      throw error;
    }
    if (ended) return void (await unwatch());
    streams.add(end);

    res.status(200).set({
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx: pass each event through instead of buffering the response
    });
    res.flushHeaders();
    open = true;
    await sendLatest();
  };
}
