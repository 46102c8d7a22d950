import type http from 'node:http';
import type { AppError } from '@cloudretail/errors';

/**
 * Writes the error envelope from outside express's error chain (proxy events fire after the
 * middleware returned). A response already streaming cannot change its status: it is cut instead.
 */
export function sendError(res: http.ServerResponse, error: AppError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify(error.toJSON());
  res.statusCode = error.status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', Buffer.byteLength(body));
  res.end(body);
}
