import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';

/**
 * Drops expired leases, then takes one when fewer than the limit are held. One script, so
 * concurrent opens on any number of replicas never exceed the limit.
 * KEYS: the user's lease set. ARGV: now (ms), limit, lease ms, lease id. Returns 1 when taken.
 */
const ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

export interface StreamSlot {
  /** Extends the lease (each heartbeat does); a replica that died stops renewing and its slots lapse. */
  renew: () => Promise<void>;
  release: () => Promise<void>;
}

/**
 * Per-user open-stream slots, counted across replicas in Redis: a sorted set per user of lease
 * ids scored by expiry. Leases (not a counter) so that a replica killed with streams open does
 * not hold its users' slots forever: they lapse `leaseMs` after the last renewal.
 */
export function streamSlots(redis: Redis, { prefix, limit, leaseMs }: { prefix: string; limit: number; leaseMs: number }) {
  const keyOf = (userId: string) => `${prefix}sse-streams:${userId}`;
  return {
    limit,
    /** A slot, or null when the user already holds `limit` streams. */
    async acquire(userId: string): Promise<StreamSlot | null> {
      const key = keyOf(userId);
      const id = randomUUID();
      if (Number(await redis.eval(ACQUIRE, 1, key, Date.now(), limit, leaseMs, id)) !== 1) return null;
      return {
        renew: async () => {
          await redis.multi().zadd(key, 'XX', Date.now() + leaseMs, id).pexpire(key, leaseMs).exec();
        },
        release: async () => {
          await redis.zrem(key, id);
        },
      };
    },
  };
}

export type StreamSlots = ReturnType<typeof streamSlots>;
