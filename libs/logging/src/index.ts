import { AsyncLocalStorage } from 'node:async_hooks';
import pino, { type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** What every log line written while handling one request (or one message) carries. */
export interface RequestContext {
  requestId: string;
}

const storage = new AsyncLocalStorage<RequestContext>();

/** Runs `fn` with `context` visible to every logger call beneath it, across awaits. */
export function runWithContext<T>(context: RequestContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The request id of the request (or message) being handled, if any. */
export function currentRequestId(): string | undefined {
  return storage.getStore()?.requestId;
}

export interface LoggerOptions {
  /** Service name, written as `service` on every line. */
  name: string;
  level?: LevelWithSilent;
  /** Where lines go; stdout by default. Tests pass a stream to read them back. */
  destination?: DestinationStream;
}

/**
 * A pino JSON logger that stamps the current request id on every line (unless the line names its
 * own `requestId`) and redacts secrets.
 */
export function createLogger({ name, level = 'info', destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      base: { service: name },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: (line: { requestId?: unknown }) => {
        if (line.requestId !== undefined) return {};
        const requestId = currentRequestId();
        return requestId ? { requestId } : {};
      },
      redact: { paths: ['password', '*.password', 'token', '*.token', 'authorization', '*.authorization'], censor: '[redacted]' },
    },
    destination,
  );
}

/**
 * A connection URL fit to print: the password (if any) replaced by `***`. Strings that are not
 * URLs are returned as `(unparseable URL)` rather than echoed, since they may hold a secret.
 */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}
