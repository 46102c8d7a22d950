import type Redis from 'ioredis';

export interface ThrottleOptions {
  maxPerAccount: number;
  maxPerIp: number;
  windowSeconds: number;
  keyPrefix: string;
}

/**
 * Reserves a slot in both counters, or reports how long the caller must wait. The check and the
 * increment are one script, so concurrent attempts on any number of replicas can never get more
 * than the limit past it. A counter's window starts at its first attempt (INCR then EXPIRE).
 * KEYS: account, ip. ARGV: account limit, ip limit, window seconds.
 * Returns 0 when admitted, else the seconds until the longest blocking counter expires.
 */
const ACQUIRE = `
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then redis.call('EXPIRE', key, ARGV[3]); ttl = tonumber(ARGV[3]) end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[3]) end
end
return 0`;

/** A successful login: the account counter is cleared; the IP gives back the slot it reserved. */
const SUCCEEDED = `
redis.call('DEL', KEYS[1])
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then redis.call('DECR', KEYS[2]) end
return 0`;

/**
 * Failed-login counters in Redis, per account (normalised email) and per client IP. Every attempt
 * reserves a slot before the password is checked; a success hands it back, a failure keeps it.
 */
export function loginThrottle(redis: Redis, { maxPerAccount, maxPerIp, windowSeconds, keyPrefix }: ThrottleOptions) {
  const keys = (email: string, ip: string) => [`${keyPrefix}:account:${email}`, `${keyPrefix}:ip:${ip}`];
  return {
    /** Resolves 0 when the attempt may go ahead, else the seconds to wait. */
    async acquire(email: string, ip: string): Promise<number> {
      return Number(await redis.eval(ACQUIRE, 2, ...keys(email, ip), maxPerAccount, maxPerIp, windowSeconds));
    },
    async succeeded(email: string, ip: string): Promise<void> {
      await redis.eval(SUCCEEDED, 2, ...keys(email, ip));
    },
  };
}

export type LoginThrottle = ReturnType<typeof loginThrottle>;
