import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { createLogger } from '@cloudretail/logging';
import { signTestToken } from '@cloudretail/testing';

export const logger = createLogger({ name: 'event-bus-test', level: (process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent' });

const auth = { sign: signTestToken };
export const tokenFor = (userId: string, role: 'customer' | 'admin' = 'customer') => auth.sign({ userId, role });
export const bearer = (userId: string, role: 'customer' | 'admin' = 'customer') => `Bearer ${tokenFor(userId, role)}`;
export const adminBearer = bearer(randomUUID(), 'admin');

/** A topic/group namespace of its own (EVENT_TOPIC_PREFIX), so test files never share streams. */
export const uniquePrefix = () => `t${randomUUID().slice(0, 8)}.`;

export { eventually } from '@cloudretail/testing';

/** The value of one series in Prometheus text output, or undefined when it is absent. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

export interface SseEvent {
  id?: string;
  event?: string;
  data: unknown;
}

/** A Server-Sent Events client that records what arrives, as it arrives. */
export interface SseClient {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Everything received, comments (heartbeats) included. */
  raw: string;
  events: SseEvent[];
  /** Whether the server ended the stream. */
  ended: boolean;
  /** Resolves when the response is over, whoever ended it. */
  done: Promise<void>;
  close: () => void;
}

export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let buffer = '';
      let markDone: () => void = () => undefined;
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        raw: '',
        events: [],
        ended: false,
        done: new Promise((r) => (markDone = r)),
        close: () => req.destroy(),
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        client.raw += chunk;
        buffer += chunk;
        for (let at = buffer.indexOf('\n\n'); at >= 0; at = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, at);
          buffer = buffer.slice(at + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (!line || line.startsWith(':')) continue;
            const colon = line.indexOf(':');
            fields[line.slice(0, colon)] = line.slice(colon + 1).trimStart();
          }
          if (fields['data'] !== undefined) client.events.push({ id: fields['id'], event: fields['event'], data: JSON.parse(fields['data']) });
        }
      });
      res.on('end', () => {
        client.ended = true;
        markDone();
      });
      res.on('close', () => markDone());
      resolve(client);
    });
    req.on('error', reject);
  });
}
