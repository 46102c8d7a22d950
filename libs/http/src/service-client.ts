import { AppError } from '@cloudretail/errors';
import { currentRequestId } from '@cloudretail/logging';

export interface ServiceClientOptions {
  /** Shown in the 503 message, e.g. "The product catalog". */
  name: string;
  /** The other service's base URL (from config). */
  baseUrl: string;
  /** Per call; past it the call is a 503. */
  timeoutMs: number;
}

/**
 * Reads from another service over HTTP, forwarding the request id. `get` resolves the JSON body
 * of a 200 and null for a 404; a service that is down, slow, or answers anything else is a 503
 * `service_unavailable` for our caller — never a guess and never a 500.
 */
export function serviceClient({ name, baseUrl, timeoutMs }: ServiceClientOptions) {
  const base = baseUrl.replace(/\/+$/, '');
  const unavailable = (cause: unknown) => new AppError('service_unavailable', `${name} is unavailable; try again shortly`, undefined, { cause });

  return {
    async get(path: string): Promise<unknown | null> {
      const requestId = currentRequestId();
      let res: Response;
      try {
        res = await fetch(`${base}${path}`, {
          headers: { accept: 'application/json', ...(requestId ? { 'x-request-id': requestId } : {}) },
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (error) {
        throw unavailable(error);
      }
      if (res.status !== 200) {
        await res.body?.cancel(); // free the connection
        if (res.status === 404) return null;
        throw unavailable(new Error(`${base}${path} answered ${res.status}`));
      }
      return res.json().catch((error) => {
        throw unavailable(error);
      });
    },
    unavailable,
  };
}
