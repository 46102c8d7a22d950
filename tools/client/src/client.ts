import createClient, { type Client, type Middleware } from 'openapi-fetch';
import type { paths } from './api';

export type { paths } from './api';
export type CloudRetailClient = Client<paths>;

/**
 * A typed client of the public API (the gateway). Its types are generated from the merged OpenAPI
 * document (`src/api.d.ts`, see README), so a call the document does not describe does not compile.
 */
export function cloudRetailClient(baseUrl: string, { middleware = [] }: { middleware?: Middleware[] } = {}): CloudRetailClient {
  const client = createClient<paths>({ baseUrl });
  for (const m of middleware) client.use(m);
  return client;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

export interface StatusEvent {
  id: string;
  event: string;
  data: { orderId: string; status: string; reason?: string; at: string };
}

/**
 * `GET /api/orders/{id}/events` read to its end: the order's status changes as Server-Sent Events.
 * Resolves with the events and the response once the server ends the stream (after a final status;
 * `204` when `lastEventId` already is the latest final one), or rejects after `timeoutMs`. `onEvent` sees each event as it arrives.
 */
export async function orderEvents(
  baseUrl: string,
  orderId: string,
  token: string,
  { timeoutMs = 30_000, lastEventId, onEvent }: { timeoutMs?: number; lastEventId?: string; onEvent?: (e: StatusEvent) => void } = {},
): Promise<{ response: Response; events: StatusEvent[] }> {
  const response = await fetch(new URL(`/api/orders/${encodeURIComponent(orderId)}/events`, baseUrl), {
    headers: { ...bearer(token), accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: AbortSignal.timeout(timeoutMs),
  });
  const events: StatusEvent[] = [];
  if (!response.ok || !response.body) return { response, events };
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields = Object.fromEntries(
        block
          .split('\n')
          .filter((line) => line && !line.startsWith(':'))
          .map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trimStart()]),
      );
      if (fields.data === undefined) continue;
      const event = { id: fields.id, event: fields.event ?? 'message', data: JSON.parse(fields.data) };
      events.push(event);
      onEvent?.(event);
    }
  }
  return { response, events };
}
