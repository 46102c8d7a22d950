import { type Auth, requireRole } from '@cloudretail/auth';
import { z } from '@cloudretail/config';
import { createApi } from '@cloudretail/http';
import type { BackboneUseCases } from '../../domain/backbone-use-cases';
import type { OrderStatusUseCases } from '../../domain/order-status-use-cases';
import type { Logger } from '@cloudretail/logging';
import type { StreamSlots } from '../../data-access/stream-slots';
import { type OpenStreams, type StreamLimits, streamOrderEvents, tokenFromQuery } from './order-events';

const CatalogEntry = z.object({ type: z.string(), version: z.number().int(), topic: z.string(), schema: z.record(z.string(), z.unknown()) });
const DeadLetter = z
  .object({
    id: z.string(),
    group: z.string(),
    topic: z.string(),
    reason: z.string(),
    attempts: z.number().int(),
    failedAt: z.string(),
    envelope: z.unknown(),
  })
  .meta({ id: 'DeadLetter' });
const DeadLetterId = z.string().regex(/^[\w.:-]{1,200}$/, 'must be a dead-letter id as listed');

export interface EventBusApiDeps {
  backbone: BackboneUseCases;
  orderStatus: OrderStatusUseCases;
  auth: Auth;
  /** Consumer groups whose dead letters may be listed and replayed. */
  groups: string[];
  streams: OpenStreams;
  slots: StreamSlots;
  limits: StreamLimits;
  logger: Logger;
}

/** The event catalog, dead-letter administration and live order status. */
export function eventBusApi({ backbone, orderStatus, auth, groups, streams, slots, limits, logger }: EventBusApiDeps) {
  const api = createApi({ title: 'event-bus', version: '1.0.0', description: 'CloudRetail event backbone operations and live order status' });
  const admin = [auth.authenticate, requireRole('admin')];
  const Group = z.enum(groups as [string, ...string[]]);

  api.route(
    { method: 'get', path: '/events/catalog', operationId: 'getEventCatalog', summary: 'Every event type: version, topic and payload JSON Schema', responses: { 200: z.array(CatalogEntry) } },
    (_input, _req, res) => res.json(backbone.catalog()),
  );
  api.route(
    {
      method: 'get',
      path: '/dead-letters', operationId: 'listDeadLetters',
      summary: 'Dead letters of a consumer group (oldest first, paginated)',
      auth: 'admin',
      query: z.object({ group: Group, page: z.coerce.number().int().min(1).default(1), limit: z.coerce.number().int().min(1).max(100).default(20) }),
      responses: { 200: z.object({ items: z.array(DeadLetter), page: z.number().int(), limit: z.number().int(), total: z.number().int() }) },
      before: admin,
    },
    async ({ query }, _req, res) => res.json(await backbone.listDeadLetters(query.group, query)),
  );
  api.route(
    {
      method: 'post',
      path: '/dead-letters/:group/:id/replay', operationId: 'replayDeadLetter',
      summary: 'Republish a dead letter to its source topic and remove it from the dead-letter topic',
      auth: 'admin',
      params: z.object({ group: Group, id: DeadLetterId }),
      responses: { 204: null },
      before: admin,
    },
    async ({ params }, _req, res) => {
      await backbone.replayDeadLetter(params.group, params.id);
      res.status(204).end();
    },
  );

  const stream = streamOrderEvents({ useCases: orderStatus, slots, streams, limits, logger });
  api.route(
    {
      method: 'get',
      path: '/orders/:id/events', operationId: 'streamOrderStatus',
      summary: 'Live status of an order (Server-Sent Events)',
      description:
        'Server-Sent Events (text/event-stream) of the order’s status: `event: status`, `data: {orderId, status, reason?, at}`, `id:` the status version; ends after CONFIRMED, CANCELLED or REFUNDED, or after SSE_MAX_LIFETIME_MS with a `retry:` hint (reconnect with Last-Event-ID). 204 when Last-Event-ID is already the final status; 429 beyond SSE_MAX_STREAMS_PER_USER open streams. Owner or admin; the token may also be passed as ?access_token= (EventSource cannot set headers).',
      auth: 'user',
      params: z.object({ id: z.uuid() }),
      query: z.object({ access_token: z.string().optional().describe('The bearer token, for clients that cannot set headers (EventSource)') }),
      responses: {
        200: {
          description: 'The current status at once, then every change; `: ping` comments keep the connection open',
          contentType: 'text/event-stream',
          schema: z.string().describe('`id: <version>` / `event: status` / `data: {"orderId","status","reason"?,"at"}` blocks'),
        },
        204: null,
        429: null,
      },
      before: [tokenFromQuery, auth.authenticate],
    },
    ({ params }, req, res) => stream(params.id, req, res),
  );
  return api;
}
