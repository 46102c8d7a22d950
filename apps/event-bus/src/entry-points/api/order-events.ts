import type { Request, RequestHandler, Response } from 'express';
import { identityOf } from '@cloudretail/auth';
import type { Logger } from '@cloudretail/logging';
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

/**
 * `GET /orders/:id/events`: the current status at once, then every change, as Server-Sent
 * Events; the stream ends after the first final status. The event id is the status version, so a
 * reconnecting client (Last-Event-ID) is not sent a status it already has.
 */
export function streamOrderEvents({ useCases, streams, heartbeatMs, logger }: { useCases: OrderStatusUseCases; streams: OpenStreams; heartbeatMs: number; logger: Logger }) {
  return async (orderId: string, req: Request, res: Response): Promise<void> => {
    await useCases.statusForViewer(orderId, identityOf(req)); // 404 before a byte of stream is sent

    let sentVersion = lastEventIdOf(req);
    let open = false; // headers sent; a change arriving earlier is picked up by the first read
    let ended = false;
    const heartbeat = setInterval(() => open && res.write(': ping\n\n'), heartbeatMs); // cleared by end(), which 'close' always runs
    let unwatch = async () => undefined as void;

    const end = () => {
      if (ended) return;
      ended = true;
      clearInterval(heartbeat);
      streams.delete(end);
      void unwatch();
      res.end();
    };
    // Versions only grow, so a change seen twice (pub/sub and the re-read below) is sent once.
    const send = (record: OrderStatusRecord) => {
      if (!open || ended || record.version <= sentVersion) return;
      sentVersion = record.version;
      res.write(`id: ${record.version}\nevent: status\ndata: ${JSON.stringify(toStatusEvent(record))}\n\n`);
      if (isFinal(record.status)) end();
    };
    const sendLatest = async () => {
      const latest = await useCases.latestStatus(orderId);
      if (latest) send(latest);
    };

    res.on('close', end); // the client went away
    // Subscribe first, read second: a change landing in between arrives one way or the other.
    unwatch = await useCases.watch(orderId, {
      onChange: send,
      onResync: () => void sendLatest().catch((error) => logger.warn({ err: error, orderId }, 'status re-read failed')),
    });
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
