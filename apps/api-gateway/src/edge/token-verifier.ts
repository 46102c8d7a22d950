import jwt from 'jsonwebtoken';
import type { Auth, Identity } from '@cloudretail/auth';
import type { AppError } from '@cloudretail/errors';

export interface TokenVerifierOptions {
  auth: Auth;
  /** Most tokens kept; the least recently used is dropped first. */
  maxEntries: number;
  /** Longest a cached verification is trusted, whatever the token's own `exp`. */
  maxAgeMs: number;
  now?: () => number;
}

export type Verification = { identity: Identity } | { error: AppError };

interface Entry {
  identity: Identity;
  expiresAt: number;
}

/**
 * JWT verification with a bounded LRU cache keyed by the token, so a client that sends the same
 * token on every request pays for the RS256 check once. An entry never outlives the token's `exp`.
 * Synchronous: keys are the ones already fetched (an unknown `kid` is 401 and starts a fetch), and
 * revocation (logout, role change) is left to the services behind, which check it on every request.
 * Failures are not cached: they are rare for honest clients and the rate limiter bounds the rest.
 */
export function createTokenVerifier({ auth, maxEntries, maxAgeMs, now = Date.now }: TokenVerifierOptions) {
  const cache = new Map<string, Entry>();
  let hits = 0;
  let misses = 0;

  return {
    verify(token: string): Verification {
      const entry = cache.get(token);
      const at = now();
      if (entry) {
        if (entry.expiresAt > at) {
          hits++;
          // Re-inserting moves the token to the young end of the Map's insertion order (LRU).
          cache.delete(token);
          cache.set(token, entry);
          return { identity: entry.identity };
        }
        cache.delete(token);
      }
      misses++;
      let identity: Identity;
      try {
        identity = auth.verifySignature(token);
      } catch (error) {
        return { error: error as AppError };
      }
      const { exp } = jwt.decode(token) as { exp?: number };
      const expiresAt = Math.min(at + maxAgeMs, typeof exp === 'number' ? exp * 1000 : Infinity);
      cache.set(token, { identity, expiresAt });
      if (cache.size > maxEntries) cache.delete(cache.keys().next().value as string);
      return { identity };
    },
    stats: () => ({ size: cache.size, hits, misses }),
  };
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;
