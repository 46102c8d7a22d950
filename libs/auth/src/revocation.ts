import type Redis from 'ioredis';

export interface RevocationOptions {
  /** Redis key prefix, shared by the issuer and every verifier of one platform. */
  prefix: string;
  /** How long a verifier trusts what it read: the bound on how late a revocation takes effect. */
  cacheMs: number;
  onError?: (error: unknown) => void;
}

/** Raises the value only: two revocations racing (or replicas with skewed clocks) never lower it. */
const RAISE = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then current = wanted end
redis.call('SET', KEYS[1], current, 'EX', ARGV[2])
return current`;

/**
 * Per-user "not before": tokens of a user whose `iat` is below it are revoked (logout, role change).
 * The value is in whole seconds, like `iat`; the issuer gives new tokens `iat >= notBefore`.
 * Verifiers cache a user's value for `cacheMs`. While Redis is unreachable they keep using what they
 * last read (or nothing), so an outage degrades revocation rather than every authenticated request.
 */
export function createRevocations(redis: Redis, { prefix, cacheMs, onError }: RevocationOptions) {
  const cache = new Map<string, { value: number; readAt: number }>();
  const MAX_ENTRIES = 100_000;
  const key = (userId: string) => `${prefix}${userId}`;

  async function read(userId: string): Promise<number> {
    const value = Number((await redis.get(key(userId))) ?? 0);
    cache.delete(userId);
    cache.set(userId, { value, readAt: Date.now() });
    if (cache.size > MAX_ENTRIES) cache.delete(cache.keys().next().value as string);
    return value;
  }

  return {
    /** The user's "not before" in seconds (0: none); read through the cache unless `fresh`. */
    async notBefore(userId: string, { fresh = false } = {}): Promise<number> {
      const cached = cache.get(userId);
      if (!fresh && cached && Date.now() - cached.readAt < cacheMs) return cached.value;
      if (redis.status !== 'ready') {
        if (fresh) throw new Error('Redis is not connected');
        return cached?.value ?? 0;
      }
      try {
        return await read(userId);
      } catch (error) {
        if (fresh) throw error;
        onError?.(error);
        return cached?.value ?? 0;
      }
    },
    /**
     * Revokes every token of `userId` issued up to now; returns the new "not before". The key lives
     * as long as a token does (`ttlSeconds`): older tokens have expired by then anyway.
     */
    async revoke(userId: string, ttlSeconds: number): Promise<number> {
      const notBefore = Math.floor(Date.now() / 1000) + 1;
      const value = Number(await redis.eval(RAISE, 1, key(userId), notBefore, ttlSeconds));
      cache.set(userId, { value, readAt: Date.now() });
      return value;
    },
  };
}

export type Revocations = ReturnType<typeof createRevocations>;
