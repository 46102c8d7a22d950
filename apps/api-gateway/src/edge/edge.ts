import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Identity } from '@cloudretail/auth';
import { AppError, unauthorized } from '@cloudretail/errors';
import type { RateRule } from '../config';
import { type Group, type RouteMatch, resolveRoute } from '../routes';
import type { Decision, RateLimiter } from './rate-limiter';
import type { TokenVerifier } from './token-verifier';

declare module 'express-serve-static-core' {
  interface Request {
    /** The gateway route this request matched (set by {@link edgeMiddleware}). */
    gatewayRoute?: RouteMatch;
  }
}

/**
 * Identity travels only inside the verified token. Headers a client could use to pose as someone
 * (`x-user-id`, `x-user-role`, `x-forwarded-user`, `x-auth-request-email`, `remote-user`, …) are
 * removed before anything is proxied, whatever an upstream might make of them.
 */
const IDENTITY_HEADER = /^(?:x-(?:user|auth|identity|role|roles|remote-user|forwarded-(?:user|email|groups|preferred-username|access-token))(?:-|$)|remote-user$)/;

/**
 * Hop-by-hop request headers (RFC 9110 §7.6.1) describe the client's connection, not the request:
 * the upstream connection is the keep-alive agent's (a client's `connection: close` must not close
 * a pooled socket). `transfer-encoding` stays: the body is streamed through as it came.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'];

export function stripIdentityHeaders(headers: IncomingHttpHeaders): void {
  for (const name in headers) if (IDENTITY_HEADER.test(name)) delete headers[name];
}

/** Resolves a path below `/api` (`/products/1?x=1`) to its route, ignoring the query string. */
export function routeOf(method: string, url: string): RouteMatch | undefined {
  const query = url.indexOf('?');
  return resolveRoute(method, query === -1 ? url : url.slice(0, query));
}

/**
 * The client's address: the socket's, or with `trustProxy` (one trusted load balancer in front) the
 * right-most `X-Forwarded-For` entry: the address that proxy saw. Entries to its left were written
 * by the client and are never believed.
 */
export function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  const forwarded = trustProxy ? req.headers['x-forwarded-for'] : undefined;
  const list = Array.isArray(forwarded) ? forwarded.join(',') : forwarded;
  const last = list?.slice(list.lastIndexOf(',') + 1).trim();
  return last || req.socket.remoteAddress || '';
}

/**
 * Browsers' EventSource cannot set headers, so on the order-status stream only, `?access_token=`
 * becomes the bearer token (unless the request has one) and leaves the URL: it is neither proxied
 * nor logged. Returns the URL without it. Elsewhere the parameter authenticates nothing.
 */
export function takeAccessToken(req: IncomingMessage, url: string): string {
  const query = url.indexOf('?');
  if (query === -1 || !url.includes('access_token=', query)) return url;
  const params = new URLSearchParams(url.slice(query + 1));
  const token = params.get('access_token');
  params.delete('access_token');
  if (token && !req.headers.authorization) req.headers.authorization = `Bearer ${token}`;
  const rest = params.toString();
  return url.slice(0, query) + (rest ? `?${rest}` : '');
}

export interface EdgeOptions {
  verifier: TokenVerifier;
  limiter?: RateLimiter;
  ruleFor: (group: Group) => RateRule;
  bodyLimitBytes: number;
  trustProxy: boolean;
}

/** Calls back with nothing when the request may be proxied, or with the error to answer. */
export type Admit = (req: IncomingMessage, res: ServerResponse, route: RouteMatch, done: (error?: AppError) => void) => void;

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
 * What every proxied request goes through first: identity-header scrubbing, the 1 MiB
 * content-length check, token verification (cached), rate limiting per user or IP, and the
 * public/protected decision. Plain node req/res, so the hot path and express share it.
 */
export function createEdge({ verifier, limiter, ruleFor, bodyLimitBytes, trustProxy }: EdgeOptions): Admit {
  return (req, res, route, done) => {
    stripIdentityHeaders(req.headers);
    for (const name of HOP_BY_HOP) delete req.headers[name];

    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) > bodyLimitBytes) {
      // The body is never read: close the connection after answering instead of draining it.
      res.setHeader('connection', 'close');
      return done(new AppError('payload_too_large', `Request body exceeds ${bodyLimitBytes} bytes`));
    }

    // Upstreams learn the client's address from exactly one X-Forwarded-For entry, the one decided
    // here; whatever the client sent in its place is dropped (user-service throttles logins by it).
    const ip = clientIp(req, trustProxy);
    req.headers['x-forwarded-for'] = ip;
    if (!trustProxy || !req.headers['x-forwarded-proto']) req.headers['x-forwarded-proto'] = 'http';
    if (req.headers.host) req.headers['x-forwarded-host'] = req.headers.host;
    delete req.headers['x-real-ip'];
    delete req.headers.forwarded;

    const { identity, error } = identify(req.headers.authorization, verifier);
    const decide = (decision?: Decision) => {
      if (decision) {
        res.setHeader('ratelimit-limit', decision.limit);
        res.setHeader('ratelimit-remaining', decision.remaining);
        if (!decision.allowed) {
          res.setHeader('retry-after', String(decision.retryAfter));
          return done(new AppError('rate_limited', `Too many requests, retry in ${decision.retryAfter} s`));
        }
      }
      // Public routes are forwarded even with a bad token: the service decides what it means there.
      if (!route.public) {
        if (error) return done(error);
        if (!identity) return done(unauthorized());
      }
      done();
    };

    if (!limiter) return decide();
    // Authenticated callers are limited per user across all their IPs, anonymous ones per IP; /api/auth
    // always per IP, or every new account would buy another round of login attempts.
    const bucket = identity && route.group !== 'auth' ? `u:${identity.userId}` : `ip:${ip}`;
    const decision = limiter.hit(route.group, bucket, ruleFor(route.group));
    if (decision instanceof Promise) decision.then(decide, done);
    else decide(decision);
  };
}

/**
 * The edge as express middleware (mounted at `/api`, so `req.url` is the upstream path): marks the
 * route for the proxy and the metrics label. Unknown groups fall through to the 404 handler.
 */
export function edgeMiddleware(admit: Admit): RequestHandler {
  return (req, res, next) => {
    const route = routeOf(req.method, req.url);
    if (!route) return next();
    if (route.group === 'events') req.url = takeAccessToken(req, req.url);
    req.gatewayRoute = route;
    (req as typeof req & { routeLabel?: string }).routeLabel = route.label;
    admit(req, res, route, next);
  };
}
