import { HealthCheckError, type HealthCheckMap } from '@godaddy/terminus';

/** One dependency readiness depends on. `check` resolves when it is usable and throws when not. */
export interface Check {
  name: string;
  check: () => Promise<unknown>;
  /** Reported in the details but never fails readiness: a dependency the service degrades without (e.g. a fail-open rate limiter's Redis). */
  optional?: boolean;
}

export type CheckResult = Record<string, { status: 'up' | 'down'; error?: string; ms: number; optional?: true }>;

/** `SELECT 1` through the service's own pool. */
export const postgresCheck = (db: { query: (sql: string) => Promise<unknown> }): Check => ({
  name: 'postgres',
  check: () => db.query('SELECT 1'),
});

/** `PING` on the service's Redis connection. */
export const redisCheck = (redis: { ping: () => Promise<unknown> }, name = 'redis'): Check => ({
  name,
  check: () => redis.ping(),
});

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Runs every check in parallel, each bounded by `timeoutMs`. Resolves with the per-check result
 * when all non-optional checks are up; otherwise throws a terminus HealthCheckError whose causes name the failures.
 */
export async function runChecks(checks: Check[], timeoutMs: number): Promise<CheckResult> {
  const entries = await Promise.all(
    checks.map(async ({ name, check, optional }) => {
      const started = Date.now();
      const flag = optional ? { optional: true as const } : {};
      try {
        await withTimeout(Promise.resolve().then(check), timeoutMs);
        return [name, { status: 'up' as const, ms: Date.now() - started, ...flag }] as const;
      } catch (error) {
        return [name, { status: 'down' as const, error: (error as Error).message ?? String(error), ms: Date.now() - started, ...flag }] as const;
      }
    }),
  );
  const result: CheckResult = Object.fromEntries(entries);
  if (entries.some(([, r]) => r.status === 'down' && !r.optional)) throw new HealthCheckError('readiness check failed', result);
  return result;
}

export interface ProbeOptions {
  checks: Check[];
  /** Per-check timeout for readiness. */
  timeoutMs?: number;
  /** True once start-up work (migrations, seeding, connections) is done. */
  isStarted: () => boolean;
  /** True from the first moment of shutdown: readiness fails at once. */
  isShuttingDown: () => boolean;
}

/**
 * The three terminus probe handlers. Liveness never touches dependencies (a database outage
 * must not restart every pod); readiness runs the real checks; startup reports start-up done.
 */
export function probes({ checks, timeoutMs = 1000, isStarted, isShuttingDown }: ProbeOptions): HealthCheckMap {
  return {
    verbatim: true,
    '/health/live': async () => ({ status: 'up' }),
    '/health/startup': async () => {
      if (!isStarted()) throw new HealthCheckError('starting', { status: 'starting' });
      return { status: 'up' };
    },
    '/health/ready': async () => {
      if (isShuttingDown()) throw new HealthCheckError('shutting down', { status: 'shutting_down' });
      if (!isStarted()) throw new HealthCheckError('starting', { status: 'starting' });
      return runChecks(checks, timeoutMs);
    },
  };
}
