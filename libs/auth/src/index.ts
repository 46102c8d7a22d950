import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { type KeyObject, generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { AppError, forbidden, unauthorized } from '@cloudretail/errors';
import { ALGORITHM, type KeySource, type PublicJwk, keyId, privateKeyOf, publicKeyOf, remoteKeys, staticKeys, toJwk } from './keys';
import type Redis from 'ioredis';
import { type Revocations, createRevocations } from './revocation';

export { type KeySource, type PublicJwk, keyId, pem, publicKeyOf, privateKeyOf, remoteKeys, staticKeys } from './keys';
export { type RevocationOptions, type Revocations, createRevocations } from './revocation';

export const ROLES = ['customer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling: taken only from a verified token, never from a client-supplied header. */
export interface Identity {
  userId: string;
  role: Role;
}

declare module 'express-serve-static-core' {
  interface Request {
    identity?: Identity;
  }
}

const DEFAULT_ISSUER = 'cloudretail';

export interface IssuerOptions {
  /** PEM RSA private key (JWT_PRIVATE_KEY). Only user-service has one. */
  privateKey: string | KeyObject;
  /** Public keys of earlier signing keys, still served in the JWKS until their tokens expire. */
  previousPublicKeys?: string[];
  issuer?: string;
  /** Token lifetime in seconds. */
  expiresInSeconds?: number;
}

export interface Issuer {
  /** Signs an RS256 token with `kid`; `notBefore` (seconds) raises `iat` past a revocation. */
  sign: (identity: Identity, options?: { notBefore?: number }) => string;
  /** `{ keys: [...] }` for `GET /.well-known/jwks.json`: the current key first. */
  jwks: () => { keys: PublicJwk[] };
  /** The issuer's own public keys, for verifying its tokens without fetching its JWKS. */
  keys: KeySource;
  expiresInSeconds: number;
}

/** The token issuer (user-service only): signs with the private key and publishes the public keys. */
export function createIssuer({ privateKey, previousPublicKeys = [], issuer = DEFAULT_ISSUER, expiresInSeconds = 3600 }: IssuerOptions): Issuer {
  const key = typeof privateKey === 'string' ? privateKeyOf(privateKey) : privateKey;
  const publicKeys = [publicKeyOf(key.export({ format: 'pem', type: 'pkcs8' }) as string), ...previousPublicKeys.map(publicKeyOf)];
  const kid = keyId(publicKeys[0]);
  const jwks = { keys: publicKeys.map(toJwk) };
  return {
    sign({ userId, role }, { notBefore = 0 } = {}) {
      const iat = Math.max(Math.floor(Date.now() / 1000), notBefore);
      return jwt.sign({ role, iat }, key, { algorithm: ALGORITHM, keyid: kid, subject: userId, issuer, expiresIn: expiresInSeconds });
    },
    jwks: () => jwks,
    keys: staticKeys(publicKeys),
    expiresInSeconds,
  };
}

/** A fresh 2048-bit key pair (PEM), for development issuers and tests. */
export function generateSigningKeyPair(): { privateKey: string; publicKey: string } {
  return generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
}

export interface AuthOptions {
  /** Public keys: staticKeys (JWT_PUBLIC_KEY, the issuer's own) or remoteKeys (JWKS_URL). */
  keys: KeySource;
  /** Per-user "not before" (logout, role change); without it only signature and expiry count. */
  revocations?: Revocations;
  issuer?: string;
}

export interface Auth {
  /** Signature, expiry, claims and revocation; fetches an unknown `kid`'s key first. */
  verify: (token: string) => Promise<Identity>;
  /**
   * Signature, expiry and claims with the keys already known, synchronously (the gateway's cached
   * edge check; the services behind it check revocation). An unknown `kid` is 401 and starts a fetch.
   */
  verifySignature: (token: string) => Identity;
  /** Requires a valid bearer token: sets `req.identity`, else 401. */
  authenticate: RequestHandler;
  /** Sets `req.identity` when a valid token is present; rejects an invalid one; lets anonymous through. */
  optionalAuthenticate: RequestHandler;
}

interface Claims {
  identity: Identity;
  iat: number;
}

const invalid = (error: unknown) => new AppError('unauthorized', error instanceof jwt.TokenExpiredError ? 'Token expired' : 'Invalid token', undefined, { cause: error });

/**
 * JWT verification with public keys only: RS256 is the one algorithm accepted, so `alg: none`,
 * HS256 (with any secret, the public key included) and other swaps are 401, and a verifier can
 * never mint a token.
 */
export function createAuth({ keys, revocations, issuer = DEFAULT_ISSUER }: AuthOptions): Auth {
  const check = (token: string, key: KeyObject | undefined): Claims => {
    try {
      if (!key) throw new Error('unknown signing key');
      const payload = jwt.verify(token, key, { algorithms: [ALGORITHM], issuer }) as jwt.JwtPayload;
      if (typeof payload.sub !== 'string' || !ROLES.includes(payload.role) || typeof payload.iat !== 'number') throw new Error('missing sub, role or iat');
      return { identity: { userId: payload.sub, role: payload.role }, iat: payload.iat };
    } catch (error) {
      throw invalid(error);
    }
  };
  const kidOf = (token: string): string | undefined => {
    const decoded = jwt.decode(token, { complete: true });
    if (!decoded) throw invalid(new Error('malformed token'));
    return typeof decoded.header.kid === 'string' ? decoded.header.kid : undefined;
  };

  const verify = async (token: string): Promise<Identity> => {
    const { identity, iat } = check(token, await keys.resolve(kidOf(token)));
    if (revocations && iat < (await revocations.notBefore(identity.userId))) throw new AppError('unauthorized', 'Token revoked');
    return identity;
  };

  const bearer = (req: Request): string | undefined => {
    const header = req.headers.authorization;
    if (!header) return undefined;
    const [scheme, token] = header.split(' ');
    if (scheme?.toLowerCase() !== 'bearer' || !token) throw unauthorized('Authorization header must be "Bearer <token>"');
    return token;
  };

  return {
    verify,
    verifySignature: (token) => check(token, keys.get(kidOf(token))).identity,
    async authenticate(req: Request, _res: Response, next: NextFunction) {
      const token = bearer(req);
      if (!token) throw unauthorized();
      req.identity = await verify(token);
      next();
    },
    async optionalAuthenticate(req: Request, _res: Response, next: NextFunction) {
      const token = bearer(req);
      if (token) req.identity = await verify(token);
      next();
    },
  };
}

/** The verifier settings every service reads (see `@cloudretail/config` dataServiceBase). */
export interface VerifierConfig {
  JWT_PUBLIC_KEY?: string;
  JWKS_URL: string;
  JWT_REVOCATION_KEY_PREFIX: string;
  JWT_REVOCATION_CACHE_MS: number;
}

/** Public keys from JWT_PUBLIC_KEY (pinned) when set, else from JWKS_URL. */
export function keysFromConfig(config: Pick<VerifierConfig, 'JWT_PUBLIC_KEY' | 'JWKS_URL'>, onError?: (error: unknown) => void): KeySource {
  return config.JWT_PUBLIC_KEY ? staticKeys([publicKeyOf(config.JWT_PUBLIC_KEY)]) : remoteKeys({ url: config.JWKS_URL, onError });
}

/** 403 unless the authenticated caller has one of `roles` (use after `authenticate`). */
export function requireRole(...roles: Role[]): RequestHandler {
  return (req, _res, next) => {
    if (!req.identity) throw unauthorized();
    if (!roles.includes(req.identity.role)) throw forbidden(`Requires role ${roles.join(' or ')}`);
    next();
  };
}

/** The caller's identity; throws 401 when the route forgot `authenticate`. */
export function identityOf(req: Request): Identity {
  if (!req.identity) throw unauthorized();
  return req.identity;
}

/**
 * A service's verifier from its config: public keys (JWT_PUBLIC_KEY or JWKS_URL, fetched now so
 * the first request does not wait) and revocations in its Redis.
 */
export function authFromConfig(config: VerifierConfig, { redis, logger }: { redis: Redis; logger: { warn: (fields: object, msg: string) => void } }): Auth {
  const keys = keysFromConfig(config, (err) => logger.warn({ err, url: config.JWKS_URL }, 'JWKS fetch failed'));
  keys.warm();
  const revocations = createRevocations(redis, {
    prefix: config.JWT_REVOCATION_KEY_PREFIX,
    cacheMs: config.JWT_REVOCATION_CACHE_MS,
    onError: (err) => logger.warn({ err }, 'token revocation check skipped: Redis unreachable'),
  });
  return createAuth({ keys, revocations });
}
