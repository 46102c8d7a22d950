import type Redis from 'ioredis';
import type { Logger } from '@cloudretail/logging';
import { Counter, Gauge, type Registry } from '@cloudretail/metrics';
import type { RateRule } from '../config';

export interface RateLimiterOptions {
  redis: Redis;
  logger: Logger;
  registry: Registry;
  /** Redis key prefix; replicas that share limits use the same one. */
  prefix: string;
  /** How often pending local counts are sent to Redis (one pipeline for all keys). */
  syncIntervalMs: number;
  /** Once this share of a limit is used, each request awaits Redis and the decision is exact. */
  exactFrom: number;
  /** Redis outages are logged at most once per this interval. */
  logIntervalMs?: number;
}

export interface Decision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until the window resets. */
  retryAfter: number;
}

/** One fixed window of one bucket (a route group and a user or IP) as this replica knows it. */
interface Window {
  key: string;
  endsAt: number;
  /** The shared count Redis last reported (includes other replicas). */
  known: number;
  /** Counted here, sent to Redis, reply not in yet. */
  inflight: number;
  /** Counted here, not sent yet. */
  pending: number;
  /** Redis has answered for this window at least once, so `known` is meaningful. */
  synced: boolean;
}

/**
 * A fixed-window rate limiter shared across replicas through Redis, kept off the request path:
 *
 * - Far from the limit, a request is decided from the last count Redis reported plus this replica's
 *   own unsent count, and its increment joins a batch that is sent every `syncIntervalMs` in one
 *   pipeline (`INCRBY` + `PEXPIRE` per key). No Redis round trip on the request.
 * - The first request of a window on a replica, and every request once `exactFrom` of the limit is
 *   used, awaits its own `INCRBY`: the reply is the shared count, so the decision is exact where it
 *   matters. Replies on one connection arrive in order, so `known + inflight + pending` never
 *   counts a request twice and never exceeds the true count: a rejection is always deserved.
 * - Overshoot is bounded by other replicas' fast-path requests not yet sent (at most
 *   `exactFrom × limit` each, for at most one sync interval).
 * - Redis down: fail open. Counting continues locally (each replica enforces the limit on its own
 *   traffic), the outage is logged once per interval and `gateway_rate_limiter_redis_up` is 0.
 */
export function createRateLimiter({ redis, logger, registry, prefix, syncIntervalMs, exactFrom, logIntervalMs = 30_000 }: RateLimiterOptions) {
  const windows = new Map<string, Window>();
  const dirty = new Set<Window>();
  let redisUp = redis.status === 'ready';
  let lastLoggedAt = 0;
  let stopped = false;

  const redisUpGauge = new Gauge({ name: 'gateway_rate_limiter_redis_up', help: '1 while the rate limiter reaches Redis; 0 while it fails open', registers: [registry] });
  const limited = new Counter({ name: 'gateway_rate_limited_total', help: 'Requests rejected with 429, by route group', labelNames: ['group'] as const, registers: [registry] });
  const syncErrors = new Counter({ name: 'gateway_rate_limiter_sync_errors_total', help: 'Rate limiter commands to Redis that failed (counted locally instead)', registers: [registry] });
  redisUpGauge.set(redisUp ? 1 : 0);

  const setRedisUp = (up: boolean, error?: unknown) => {
    if (stopped) return;
    if (up !== redisUp) redisUpGauge.set(up ? 1 : 0);
    if (!up && Date.now() - lastLoggedAt >= logIntervalMs) {
      lastLoggedAt = Date.now();
      logger.warn({ err: error }, 'rate limiter: Redis unreachable, failing open (counting per replica)');
    } else if (up && !redisUp) {
      logger.info('rate limiter: Redis reachable again');
    }
    redisUp = up;
  };
  redis.on('ready', () => setRedisUp(true));
  redis.on('error', (error) => setRedisUp(false, error));
  redis.on('close', () => setRedisUp(false, new Error('connection closed')));

  /** Sends `amount` for `w` and applies the reply in order; on failure keeps the count locally. */
  async function send(w: Window, amount: number, ttlMs: number): Promise<number> {
    w.inflight += amount;
    try {
      const results = await redis.pipeline().incrby(w.key, amount).pexpire(w.key, ttlMs).exec();
      const [error, count] = results?.[0] ?? [new Error('no reply')];
      if (error) throw error;
      w.inflight -= amount;
      w.known = Math.max(w.known, Number(count));
      w.synced = true;
      return w.known;
    } catch (error) {
      w.inflight -= amount;
      w.known += amount;
      syncErrors.inc();
      setRedisUp(false, error);
      return w.known + w.inflight + w.pending;
    }
  }

  function flush(): Promise<unknown> {
    const now = Date.now();
    const batch = [...dirty];
    dirty.clear();
    const sends: Promise<number>[] = [];
    for (const w of batch) {
      const amount = w.pending;
      if (!amount) continue;
      w.pending = 0;
      if (redisUp) sends.push(send(w, amount, Math.max(w.endsAt - now, 0) + 1000));
      else w.known += amount;
    }
    return Promise.all(sends);
  }

  let sweeps = 0;
  function sweep(): void {
    const now = Date.now();
    for (const [key, w] of windows) if (w.endsAt <= now && !w.pending && !w.inflight) windows.delete(key);
  }

  const timer = setInterval(() => {
    void flush();
    // Ended windows are dropped about every 100 syncs rather than on every tick.
    if (++sweeps % 100 === 0) sweep();
  }, syncIntervalMs);
  timer.unref();

  const decision = (allowed: boolean, rule: RateRule, used: number, endsAt: number): Decision => ({
    allowed,
    limit: rule.limit,
    remaining: Math.max(rule.limit - used, 0),
    retryAfter: Math.max(Math.ceil((endsAt - Date.now()) / 1000), 1),
  });

  return {
    /**
     * Counts one request of `bucket` (e.g. `orders:u:<sub>`) against `rule`. Synchronous on the
     * fast path; a promise when the decision needs Redis's exact count.
     */
    hit(group: string, bucket: string, rule: RateRule): Decision | Promise<Decision> {
      const now = Date.now();
      const index = Math.floor(now / rule.windowMs);
      const key = `${prefix}:${group}:${bucket}:${index}`;
      let w = windows.get(key);
      if (!w) {
        w = { key, endsAt: (index + 1) * rule.windowMs, known: 0, inflight: 0, pending: 0, synced: false };
        windows.set(key, w);
      }
      const used = w.known + w.inflight + w.pending;
      if (used >= rule.limit) {
        limited.inc({ group });
        return decision(false, rule, used, w.endsAt);
      }
      if (redisUp && (!w.synced || used + 1 > rule.limit * exactFrom)) {
        const amount = w.pending + 1;
        w.pending = 0;
        const window = w;
        return send(w, amount, w.endsAt - now + 1000).then((count) => {
          const allowed = count <= rule.limit;
          if (!allowed) limited.inc({ group });
          return decision(allowed, rule, count, window.endsAt);
        });
      }
      w.pending++;
      dirty.add(w);
      return decision(true, rule, used + 1, w.endsAt);
    },
    /** True while Redis answers; false while failing open. */
    isRedisUp: () => redisUp,
    /** Sends what is pending now (tests, shutdown). */
    flush,
    async stop(): Promise<void> {
      clearInterval(timer);
      await flush();
      stopped = true;
    },
  };
}

export type RateLimiter = ReturnType<typeof createRateLimiter>;
