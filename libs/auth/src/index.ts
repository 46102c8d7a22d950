import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { type KeyObject, createPublicKey, createSecretKey } from 'node:crypto';
import jwt, { type Algorithm } from 'jsonwebtoken';
import { AppError, forbidden, unauthorized } from '@cloudretail/errors';

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

export interface AuthOptions {
  /** HS256 shared secret (the default algorithm). */
  secret?: string;
  algorithm?: 'HS256' | 'RS256';
  /** RS256: PEM private key (only the issuer needs it) and public key (every verifier). */
  privateKey?: string;
  publicKey?: string;
  issuer?: string;
  /** Token lifetime, in seconds or a vercel/ms string such as `1h`. */
  expiresIn?: number | `${number}${'s' | 'm' | 'h' | 'd'}`;
}

export interface Auth {
  sign: (identity: Identity) => string;
  verify: (token: string) => Identity;
  /** Requires a valid bearer token: sets `req.identity`, else 401. */
  authenticate: RequestHandler;
  /** Sets `req.identity` when a valid token is present; rejects an invalid one; lets anonymous through. */
  optionalAuthenticate: RequestHandler;
}

/** JWT issue and verify. Only the configured algorithm is accepted, so `alg: none` and algorithm swaps fail. */
export function createAuth({ secret, algorithm = 'HS256', privateKey, publicKey, issuer = 'cloudretail', expiresIn = '1h' }: AuthOptions): Auth {
  const signKey = algorithm === 'HS256' ? secret : privateKey;
  const verifyText = algorithm === 'HS256' ? secret : publicKey;
  if (!verifyText) throw new Error(algorithm === 'HS256' ? 'JWT_SECRET is required for HS256' : 'JWT_PUBLIC_KEY is required for RS256');
  // A KeyObject made once: given a string, jsonwebtoken builds one per call, and for a secret it
  // first tries (and fails) to parse it as a public key, which costs more than the signature check.
  const verifyKey: KeyObject = algorithm === 'HS256' ? createSecretKey(Buffer.from(verifyText)) : createPublicKey(verifyText);
  const algorithms: Algorithm[] = [algorithm];

  const verify = (token: string): Identity => {
    try {
      const payload = jwt.verify(token, verifyKey, { algorithms, issuer }) as jwt.JwtPayload;
      if (typeof payload.sub !== 'string' || !ROLES.includes(payload.role)) throw new Error('missing sub or role');
      return { userId: payload.sub, role: payload.role };
    } catch (error) {
      const expired = error instanceof jwt.TokenExpiredError;
      throw new AppError('unauthorized', expired ? 'Token expired' : 'Invalid token', undefined, { cause: error });
    }
  };

  const bearer = (req: Request): string | undefined => {
    const header = req.headers.authorization;
    if (!header) return undefined;
    const [scheme, token] = header.split(' ');
    if (scheme?.toLowerCase() !== 'bearer' || !token) throw unauthorized('Authorization header must be "Bearer <token>"');
    return token;
  };

  return {
    sign(identity) {
      if (!signKey) throw new Error('signing needs JWT_SECRET (HS256) or JWT_PRIVATE_KEY (RS256)');
      return jwt.sign({ role: identity.role }, signKey, { algorithm, subject: identity.userId, issuer, expiresIn });
    },
    verify,
    authenticate(req: Request, _res: Response, next: NextFunction) {
      const token = bearer(req);
      if (!token) throw unauthorized();
      req.identity = verify(token);
      next();
    },
    optionalAuthenticate(req: Request, _res: Response, next: NextFunction) {
      const token = bearer(req);
      if (token) req.identity = verify(token);
      next();
    },
  };
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
