import type Redis from 'ioredis';

export interface ThrottleOptions {
  maxPerAccount: number;
  maxPerIp: number;
  windowSeconds: number;
  keyPrefix: string;
  /** How long an address that signed in to an account stays known to it. */
  knownClientSeconds: number;
  /** Most addresses remembered per account (the most recent are kept). */
  maxKnownClients: number;
}

/**
 * Reserves a slot in the client's counters, or reports how long the caller must wait. The check
 * and the increment are one script, so concurrent attempts on any number of replicas can never get
 * more than the limit past it. A counter's window starts at its first attempt (INCR then EXPIRE).
 *
 * Counters: the client address (every attempt), then for the account either the account-wide
 * counter (an unknown client) or the counter of this account at this address (a client that has
 * signed in to the account before). So failures from elsewhere lock the account only for clients
 * it has never seen; its owner's known client is slowed only by its own failures.
 * KEYS: ip, account, account at address, known addresses (sorted set). ARGV: ip limit, account
 * limit, window seconds, address. Returns 0 when admitted, else the seconds until the longest
 * blocking counter expires.
 */
const ACQUIRE = `
local known = redis.call('ZSCORE', KEYS[4], ARGV[4])
local keys = { KEYS[1], known and KEYS[3] or KEYS[2] }
local limits = { ARGV[1], ARGV[2] }
local wait = 0
for i, key in ipairs(keys) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(limits[i]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then redis.call('EXPIRE', key, ARGV[3]); ttl = tonumber(ARGV[3]) end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return wait end
for _, key in ipairs(keys) do
  if redis.call('INCR', key) == 1 then redis.call('EXPIRE', key, ARGV[3]) end
end
return 0`;

/**
 * A successful login: a known address's own account counter is cleared; a new address gives back
 * the account-wide slot it reserved and becomes known (newest kept); the IP gives back its slot.
 * Other failures on the account-wide counter are left to expire, so an owner signing in does not
 * hand an attacker elsewhere a fresh set of attempts.
 * KEYS as in ACQUIRE. ARGV: address, now (ms), known-client seconds, most known clients.
 */
const SUCCEEDED = `
if redis.call('ZSCORE', KEYS[4], ARGV[1]) then
  redis.call('DEL', KEYS[3])
elseif tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -tonumber(ARGV[4]) - 1)
redis.call('EXPIRE', KEYS[4], ARGV[3])
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 0`;

/**
 * Failed-login counters in Redis, per client address and per account (see ACQUIRE). Every attempt
 * reserves a slot before the password is checked; a success hands it back, a failure keeps it.
 */
export function loginThrottle(redis: Redis, { maxPerAccount, maxPerIp, windowSeconds, keyPrefix, knownClientSeconds, maxKnownClients }: ThrottleOptions) {
  const keys = (email: string, ip: string) => [`${keyPrefix}:ip:${ip}`, `${keyPrefix}:account:${email}`, `${keyPrefix}:account-ip:${email}:${ip}`, `${keyPrefix}:known:${email}`];
  return {
    /** Resolves 0 when the attempt may go ahead, else the seconds to wait. */
    async acquire(email: string, ip: string): Promise<number> {
      return Number(await redis.eval(ACQUIRE, 4, ...keys(email, ip), maxPerIp, maxPerAccount, windowSeconds, ip));
    },
    async succeeded(email: string, ip: string): Promise<void> {
      await redis.eval(SUCCEEDED, 4, ...keys(email, ip), ip, Date.now(), knownClientSeconds, maxKnownClients);
    },
  };
}

export type LoginThrottle = ReturnType<typeof loginThrottle>;
