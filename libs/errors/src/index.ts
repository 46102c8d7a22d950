import { ZodError, type z } from 'zod';

/** Machine-readable error codes of the public API's error envelope. */
export type ErrorCode =
  | 'validation_failed'
  | 'malformed_json'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'request_timeout'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'bad_gateway'
  | 'service_unavailable'
  | 'gateway_timeout'
  | 'internal_error';

const STATUS: Record<ErrorCode, number> = {
  validation_failed: 400,
  malformed_json: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  request_timeout: 408,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  bad_gateway: 502,
  service_unavailable: 503,
  gateway_timeout: 504,
};

export interface FieldIssue {
  /** Where the field is: `body`, `query`, `params` or `headers`. */
  location: string;
  /** Dotted path inside that location, e.g. `items.0.quantity`. */
  path: string;
  message: string;
}

/** The one error type of the platform: a code, the HTTP status it maps to, and optional details. */
export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown; status?: number },
  ) {
    super(message, { cause: options?.cause });
    this.name = 'AppError';
    this.status = options?.status ?? STATUS[code];
  }

  /** 4xx errors are the client's; 5xx are ours and get logged at error level. */
  get isClientError(): boolean {
    return this.status < 500;
  }

  toJSON(): ErrorEnvelope {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}

export interface ErrorEnvelope {
  error: { code: string; message: string; details?: unknown };
}

export const validationFailed = (details: FieldIssue[]) => new AppError('validation_failed', 'Request validation failed', details);
export const notFound = (what = 'Resource') => new AppError('not_found', `${what} not found`);
export const conflict = (message: string) => new AppError('conflict', message);
export const unauthorized = (message = 'Authentication required') => new AppError('unauthorized', message);
export const forbidden = (message = 'Not allowed') => new AppError('forbidden', message);

/** Turns zod issues into the `details` list of a `validation_failed` error. */
export function fieldIssues(location: string, error: ZodError): FieldIssue[] {
  return error.issues.map((issue: z.core.$ZodIssue) => ({ location, path: issue.path.map(String).join('.'), message: issue.message }));
}

interface HttpishError {
  type?: string;
  status?: number;
  statusCode?: number;
  expose?: boolean;
}

/**
 * Normalises anything thrown into an AppError: body-parser failures keep their meaning
 * (413, malformed JSON), zod errors become validation failures, everything else is a 500
 * whose message never reaches the client.
 */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (error instanceof ZodError) return validationFailed(fieldIssues('body', error));
  const e = (error ?? {}) as HttpishError;
  switch (e.type) {
    case 'entity.too.large':
      return new AppError('payload_too_large', 'Request body exceeds the size limit', undefined, { cause: error });
    case 'entity.parse.failed':
      return new AppError('malformed_json', 'Request body is not valid JSON', undefined, { cause: error });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new AppError('unsupported_media_type', 'Unsupported request encoding', undefined, { cause: error });
  }
  const status = e.status ?? e.statusCode;
  if (e.expose && typeof status === 'number' && status >= 400 && status < 500) {
    return new AppError(status === 413 ? 'payload_too_large' : 'validation_failed', 'Bad request', undefined, { cause: error, status });
  }
  return new AppError('internal_error', 'Internal server error', undefined, { cause: error });
}
