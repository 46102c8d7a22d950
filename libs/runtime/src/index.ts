import type { Express } from 'express';
import Redis from 'ioredis';
import { ConfigError, type z, dataServiceBase, loadConfig } from '@cloudretail/config';
import { type Db, type Migration, type Sequelize, createSequelize, dbOf, ensureDatabase, migrate, runMigrateCommand } from '@cloudretail/db';
import { type EventsConfig, type Transport, connectRedis, createTransport, outboxMigration, startOutboxRelay } from '@cloudretail/events';
import { type Check, postgresCheck, redisCheck } from '@cloudretail/health';
import type { Faults } from '@cloudretail/http';
import { type Logger, createLogger, redactUrl } from '@cloudretail/logging';
import { type Metrics, createMetrics } from '@cloudretail/metrics';
import { type Closer, type RunningServer, serve } from '@cloudretail/shutdown';

type BaseConfig = z.infer<z.ZodObject<typeof dataServiceBase>> & Partial<EventsConfig> & { PORT: number };

export interface ServiceContext<C> {
  config: C;
  logger: Logger;
  metrics: Metrics;
  sequelize: Sequelize;
  /** The same pool as `sequelize`, as the domain uses it: statements and transactions (`Tx`), no ORM. */
  db: Db;
  redis: Redis;
  /** The event backbone (Redis Streams or Kafka, from EVENT_TRANSPORT); subscribe consumers here. */
  transport: Transport;
  /** Fault drills (FAULT_ERROR_RATE, FAULT_DELAY_MS): pass to `createApp`. */
  faults: Faults;
}

export interface ServiceParts {
  app: Express;
  /** Closed first, in order (consumers, relays, producers); Redis and the pool are closed after them. */
  closers?: Closer[];
  /** Readiness checks beyond Postgres and Redis (e.g. the event transport). */
  checks?: Check[];
}

/** A shared dependency beside Postgres that readiness can depend on. */
export type Dependency = 'redis' | 'events';

export interface ServiceDefinition<S extends z.ZodObject> {
  name: string;
  schema: S;
  migrations: Migration[];
  /**
   * What the service cannot serve without, beside its database (always critical). A dependency
   * not listed here is still checked and shown in `/health/ready`, but its outage does not take
   * the service out of rotation: every replica shares it, so failing readiness would only turn a
   * degraded service into an unavailable one. Default: none (Redis as a cache, the event
   * backbone as something the outbox and consumers wait out).
   */
  critical?: Dependency[];
  /** Builds the app and whatever runs beside it, once config, logger, DB and Redis are ready. */
  setup: (ctx: ServiceContext<z.infer<S>>) => Promise<ServiceParts>;
}

export interface RunningService<C> extends RunningServer {
  ctx: ServiceContext<C>;
}

/**
 * Starts a service: validated config, logger, metrics, its database (created and migrated when
 * MIGRATE_ON_START), Redis, the event transport and outbox relay, then the app with health probes
 * and graceful shutdown.
 */
export async function startService<S extends z.ZodObject>(def: ServiceDefinition<S>, env: NodeJS.ProcessEnv = process.env): Promise<RunningService<z.infer<S>>> {
  const config = loadConfig(def.schema, env) as z.infer<S> & BaseConfig;
  const critical = def.critical ?? [];
  const logger = createLogger({ name: def.name, level: config.LOG_LEVEL });
  const metrics = createMetrics({ service: def.name, defaultMetrics: config.NODE_ENV !== 'test' });
  // Both reached once before anything else connects: a missing server is one clear line, not a
  // trail of reconnect warnings ending in a bare ECONNREFUSED.
  await reach('PostgreSQL', 'DATABASE_URL', config.DATABASE_URL, () => ensureDatabase(config.DATABASE_URL));
  await reach('Redis', 'REDIS_URL', config.REDIS_URL, () => pingOnce(config.REDIS_URL));
  const sequelize = createSequelize(config.DATABASE_URL, { logger });
  const redis = connectRedis(config.REDIS_URL, logger, 'redis', { lazyConnect: true });
  const transport = createTransport({ EVENT_TRANSPORT: 'redis', ...config }, logger, { registry: metrics.registry });
  try {
    if (config.MIGRATE_ON_START !== false) await migrate(sequelize, def.migrations, 'up', logger);
    await redis.connect();
    const faults = { errorRate: config.FAULT_ERROR_RATE, delayMs: config.FAULT_DELAY_MS };
    const db = dbOf(sequelize);
    const ctx: ServiceContext<z.infer<S>> = { config, logger, metrics, sequelize, db, redis, transport, faults };
    const parts = await def.setup(ctx);
    // Every service that writes an outbox relays it: events leave only after their transaction commits.
    const relay = def.migrations.includes(outboxMigration)
      ? startOutboxRelay({ db, transport, logger, pollMs: config.OUTBOX_POLL_MS, batchSize: config.OUTBOX_BATCH_SIZE, wakeDelayMs: config.OUTBOX_WAKE_DELAY_MS, retentionHours: config.OUTBOX_RETENTION_HOURS })
      : undefined;
    const running = await serve({
      app: parts.app,
      port: config.PORT,
      host: config.HOST,
      logger,
      checks: [
        postgresCheck(sequelize),
        { ...redisCheck(redis), optional: !critical.includes('redis') },
        { name: 'events', check: () => transport.check(), optional: !critical.includes('events') },
        ...(parts.checks ?? []),
      ],
      delayMs: config.SHUTDOWN_DELAY_MS,
      timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
      closers: [
        ...(parts.closers ?? []),
        ...(relay ? [{ name: 'outbox-relay', close: () => relay.stop() }] : []),
        { name: 'event-transport', close: () => transport.close() },
        { name: 'redis', close: () => redis.quit() },
        { name: 'postgres', close: () => sequelize.close() },
      ],
    });
    return { ...running, ctx };
  } catch (error) {
    await transport.close().catch(() => undefined);
    redis.disconnect();
    await sequelize.close();
    throw error;
  }
}

/** A dependency the service could not reach at start-up; its message says what to do. */
export class DependencyError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DependencyError';
  }
}

/** Runs `attempt`; a failure becomes a DependencyError naming the URL tried (password hidden) and the variable that sets it. */
async function reach(what: string, variable: string, url: string, attempt: () => Promise<unknown>): Promise<void> {
  try {
    await attempt();
  } catch (error) {
    const reason = (error as Error).message || (error as { code?: string }).code || String(error);
    throw new DependencyError(`cannot reach ${what} at ${redactUrl(url)} (${reason}). Start ${what} there, or set ${variable} to one that runs.`, { cause: error });
  }
}

/** One connection attempt and a PING, no retries: the error is the real one (ECONNREFUSED, WRONGPASS…). */
async function pingOnce(url: string): Promise<void> {
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: 5_000 });
  let failure: Error | undefined;
  probe.on('error', (error: Error) => (failure ??= error));
  try {
    await probe.connect();
    await probe.ping();
  } catch (error) {
    throw failure ?? error;
  } finally {
    probe.disconnect();
  }
}

/**
 * The process entry point of a service: `node main.js` serves, `node main.js migrate up|down|status`
 * runs migrations (the Kubernetes init container / Job). Start-up failures print one clear line.
 */
export function runMain<S extends z.ZodObject>(def: ServiceDefinition<S>, argv = process.argv.slice(2)): void {
  const fail = (error: unknown) => {
    if (error instanceof ConfigError || error instanceof DependencyError) process.stderr.write(`${def.name}: ${error.message}\n`);
    else createLogger({ name: def.name }).fatal({ err: error }, 'start-up failed');
    process.exit(error instanceof ConfigError ? 78 : 1);
  };
  process.on('unhandledRejection', (reason) => {
    createLogger({ name: def.name }).error({ err: reason }, 'unhandled rejection');
  });
  if (argv[0] === 'migrate') {
    try {
      const config = loadConfig(def.schema) as BaseConfig;
      const logger = createLogger({ name: def.name, level: config.LOG_LEVEL });
      runMigrateCommand(argv.slice(1), { databaseUrl: config.DATABASE_URL, migrations: def.migrations, logger }).then((code) => process.exit(code), fail);
    } catch (error) {
      fail(error);
    }
    return;
  }
  startService(def).catch(fail);
}
