import type { IncomingHttpHeaders } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Identity } from '@cloudretail/auth';
import { AppError, unauthorized } from '@cloudretail/errors';
import type { RateRule } from '../config';
import { type Group, type RouteMatch, resolveRoute } from '../routes';
import type { Decision, RateLimiter } from './rate-limiter';
import type { TokenVerifier } from './token-verifier';

declare module 'express-serve-static-core' {
  interface Request {
    /** The gateway route this request matched (set by {@link edge}). */
    gatewayRoute?: RouteMatch;
  }
}

/**
 * Identity travels only inside the verified token. Headers a client could use to pose as someone
 * (`x-user-id`, `x-user-role`, `x-forwarded-user`, `x-auth-request-email`, `remote-user`, …) are
 * removed before anything is proxied, whatever an upstream might make of them.
 */
const IDENTITY_HEADER = /^(?:x-(?:user|auth|identity|role|roles|remote-user|forwarded-(?:user|email|groups|preferred-username|access-token))(?:-|$)|remote-user$)/;

export function stripIdentityHeaders(headers: IncomingHttpHeaders): void {
  for (const name in headers) if (IDENTITY_HEADER.test(name)) delete headers[name];
}

export interface EdgeOptions {
  verifier: TokenVerifier;
  limiter?: RateLimiter;
  ruleFor: (group: Group) => RateRule;
  bodyLimitBytes: number;
}

type Verified = { identity?: Identity; error?: AppError };

function identify(header: string | undefined, verifier: TokenVerifier): Verified {
  if (!header) return {};
  const space = header.indexOf(' ');
  const token = header.slice(space + 1).trim();
  if (space === -1 || header.slice(0, space).toLowerCase() !== 'bearer' || !token) {
    return { error: unauthorized('Authorization header must be "Bearer <token>"') };
  }
  return verifier.verify(token);
}

/**
 * What every `/api` request goes through before it is proxied (mounted at `/api`, so `req.url` is
 * the upstream path): route lookup, identity-header scrubbing, the 1 MiB content-length check,
 * token verification (cached), rate limiting per user or IP, and the public/protected decision.
 * Unknown groups fall through to the 404 handler.
 */
export function edge({ verifier, limiter, ruleFor, bodyLimitBytes }: EdgeOptions): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const query = req.url.indexOf('?');
    const route = resolveRoute(req.method, query === -1 ? req.url : req.url.slice(0, query));
    if (!route) return next();
    req.gatewayRoute = route;
    (req as Request & { routeLabel?: string }).routeLabel = route.label;
    stripIdentityHeaders(req.headers);

    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > bodyLimitBytes) {
      // The body is never read: close the connection after answering instead of draining it.
      res.setHeader('connection', 'close');
      return next(new AppError('payload_too_large', `Request body exceeds ${bodyLimitBytes} bytes`));
    }

    const { identity, error } = identify(req.headers.authorization, verifier);
    if (identity) req.identity = identity;

    const decide = (decision?: Decision) => {
      if (decision) {
        res.setHeader('ratelimit-limit', decision.limit);
        res.setHeader('ratelimit-remaining', decision.remaining);
        if (!decision.allowed) {
          res.setHeader('retry-after', String(decision.retryAfter));
          return next(new AppError('rate_limited', `Too many requests, retry in ${decision.retryAfter} s`));
        }
      }
      // Public routes are forwarded even with a bad token: the service decides what it means there.
      if (!route.public) {
        if (error) return next(error);
        if (!identity) return next(unauthorized());
      }
      next();
    };

    if (!limiter) return decide();
    // Authenticated callers are limited per user across all their IPs; anonymous ones per IP.
    const bucket = identity ? `u:${identity.userId}` : `ip:${req.ip}`;
    const decision = limiter.hit(route.group, bucket, ruleFor(route.group));
    if (decision instanceof Promise) decision.then(decide, next);
    else decide(decision);
  };
}
