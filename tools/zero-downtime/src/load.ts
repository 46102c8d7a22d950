import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { sleep } from './processes';

export interface LoadRequest {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface RequestResult {
  /** performance.now() when the request was sent. */
  at: number;
  ms: number;
  /** 0 when no response arrived (connection error, timeout). */
  status: number;
  error?: string;
}

export const failed = (r: RequestResult) => r.status < 200 || r.status >= 300;

export interface LoadOptions {
  baseUrl: string;
  /** The i-th request to send. */
  request: (i: number) => LoadRequest;
  /** Concurrent keep-alive connections, each sending one request after another. */
  connections?: number;
  /** Total requests per second across connections (paced); unlimited when absent. */
  ratePerSecond?: number;
  timeoutMs?: number;
  /** Hard stop, so a forgotten generator never outlives its scenario. */
  maxDurationMs?: number;
}

export interface Load {
  results: RequestResult[];
  /** Stops sending and waits for the requests in flight. */
  stop: () => Promise<RequestResult[]>;
}

/**
 * A bounded load loop over keep-alive connections, like a client behind a load balancer. Every
 * request is recorded (latency, status or the connection error) so failures can be counted and
 * latency looked at inside any time window, e.g. while the upstream list changes.
 */
export function startLoad({ baseUrl, request, connections = 8, ratePerSecond, timeoutMs = 5000, maxDurationMs = 120_000 }: LoadOptions): Load {
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const results: RequestResult[] = [];
  const deadline = Date.now() + maxDurationMs;
  let stopped = false;
  let count = 0;
  const gapMs = ratePerSecond ? (1000 * connections) / ratePerSecond : 0;

  const send = (spec: LoadRequest) =>
    new Promise<RequestResult>((resolve) => {
      const at = performance.now();
      const done = (status: number, error?: string) => resolve({ at, ms: performance.now() - at, status, error });
      const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
      const req = http.request(
        `${baseUrl}${spec.path}`,
        {
          method: spec.method ?? 'GET',
          agent,
          timeout: timeoutMs,
          headers: { ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}), ...spec.headers },
        },
        (res) => {
          res.resume();
          res.on('end', () => done(res.statusCode ?? 0));
          res.on('error', (e) => done(0, e.message));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => done(0, (e as NodeJS.ErrnoException).code ?? e.message));
      req.end(body);
    });

  const worker = async () => {
    while (!stopped && Date.now() < deadline) {
      const started = performance.now();
      results.push(await send(request(count++)));
      if (gapMs) await sleep(Math.max(0, gapMs - (performance.now() - started)));
    }
  };
  const workers = Array.from({ length: connections }, worker);

  return {
    results,
    async stop() {
      stopped = true;
      await Promise.all(workers);
      agent.destroy();
      return results;
    },
  };
}

/** Results of requests sent inside any of the given [from, to] windows (performance.now() times). */
export const within = (results: RequestResult[], windows: [number, number][]) => results.filter((r) => windows.some(([from, to]) => r.at >= from && r.at <= to));
