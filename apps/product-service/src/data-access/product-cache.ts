import type Redis from 'ioredis';
import type { Logger } from '@cloudretail/logging';

/**
 * Read-through cache for hot product reads. Entries are keyed by a generation number that every
 * write bumps *before* its response is sent, so once an update has returned no reader can be
 * served the old version (a reader that raced the write may store under the old generation, which
 * nobody reads again). Redis errors never fail a read: the cache is bypassed and the error logged.
 * While the connection is down reads go straight to the database instead of waiting for a
 * reconnect attempt to fail. Keys start with `prefix` (REDIS_KEY_PREFIX).
 */
export function productCache(redis: Redis, logger: Logger, { ttlSeconds, prefix = '' }: { ttlSeconds: number; prefix?: string }) {
  const GET_WITH_GEN = `local g = redis.call('GET', KEYS[1]) or '0' return {g, redis.call('GET', KEYS[2] .. ':' .. g)}`;

  async function read<T>(genKey: string, key: string, load: () => Promise<T>): Promise<T> {
    let generation: string | undefined;
    if (redis.status !== 'ready') return load();
    try {
      const [gen, hit] = (await redis.eval(GET_WITH_GEN, 2, genKey, key)) as [string, string | null];
      if (hit) return JSON.parse(hit) as T;
      generation = gen;
    } catch (error) {
      logger.warn({ err: error }, 'product cache read failed; reading from the database');
    }
    const value = await load();
    if (generation !== undefined && value !== null) {
      redis.set(`${key}:${generation}`, JSON.stringify(value), 'EX', ttlSeconds).catch((error) => logger.warn({ err: error }, 'product cache write failed'));
    }
    return value;
  }

  return {
    product: <T>(id: string, load: () => Promise<T>) => read(`${prefix}product:gen:${id}`, `${prefix}product:${id}`, load),
    list: <T>(queryKey: string, load: () => Promise<T>) => read(`${prefix}products:list:gen`, `${prefix}products:list:${queryKey}`, load),
    /** Called after a write commits and before it is acknowledged. */
    async invalidate(id: string): Promise<void> {
      try {
        await redis.multi().incr(`${prefix}product:gen:${id}`).incr(`${prefix}products:list:gen`).exec();
      } catch (error) {
        logger.error({ err: error, productId: id }, `product cache invalidation failed; stale reads possible for up to ${ttlSeconds}s`);
      }
    },
  };
}

export type ProductCache = ReturnType<typeof productCache>;
