import { Client } from 'pg';
import { DataTypes, Op, QueryTypes, Sequelize, Transaction } from 'sequelize';
import { SequelizeStorage, Umzug } from 'umzug';
import type { Logger } from '@cloudretail/logging';
import { namingPg, resetNamedStatements } from './prepared';

export { DataTypes, Op, QueryTypes, Sequelize, Transaction };
export { MAX_NAMED_STATEMENTS, resetNamedStatements } from './prepared';
export { dbOf, type Db, type Tx } from './unit-of-work';

export interface DbOptions {
  logger?: Logger;
  /** Connections in this process's one pool. */
  poolMax?: number;
}

/**
 * The one sequelize instance (and so the one connection pool) of a process. Queries with `bind`
 * parameters run as named prepared statements (./prepared.ts).
 */
export function createSequelize(databaseUrl: string, { logger, poolMax = 10 }: DbOptions = {}): Sequelize {
  return new Sequelize(databaseUrl, {
    dialect: 'postgres',
    dialectModule: namingPg,
    logging: logger ? (sql) => logger.trace({ sql }, 'sql') : false,
    pool: { max: poolMax, min: 0, idle: 10_000, acquire: 10_000 },
    dialectOptions: { connectionTimeoutMillis: 5_000, application_name: logger?.bindings().service ?? 'cloudretail' },
  });
}

const DB_NAME = /^[A-Za-z0-9_-]{1,63}$/;

/** Creates the database named in `databaseUrl` when it does not exist yet (safe under races). */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  if (!DB_NAME.test(name)) throw new Error(`DATABASE_URL: database name "${name}" must match ${DB_NAME}`);
  url.pathname = '/postgres';
  const client = new Client({ connectionString: url.toString(), connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) {
      await client.query(`CREATE DATABASE "${name}"`).catch((error: { code?: string }) => {
        if (error.code !== '42P04' && error.code !== '23505') throw error; // created concurrently by another replica
      });
    }
  } finally {
    await client.end();
  }
}

export interface MigrationContext {
  sequelize: Sequelize;
  /** Runs one SQL statement (or several separated by `;`). */
  sql: (text: string) => Promise<unknown>;
}

/**
 * A migration. Migrations must be backward compatible (expand/contract, see README): the
 * version before this one must keep working on the migrated schema.
 */
export interface Migration {
  name: string;
  up: (ctx: MigrationContext) => Promise<unknown>;
  down: (ctx: MigrationContext) => Promise<unknown>;
}

export type MigrateCommand = 'up' | 'down' | 'status';
export interface MigrationStatus {
  executed: string[];
  pending: string[];
}

/** Runs `fn` while holding a Postgres advisory lock, so two replicas never migrate at once. */
export async function withAdvisoryLock<T>(sequelize: Sequelize, key: string, fn: () => Promise<T>): Promise<T> {
  return sequelize.transaction(async (transaction) => {
    await sequelize.query('SELECT pg_advisory_xact_lock(hashtext($1))', { bind: [key], transaction });
    return fn();
  });
}

/**
 * Applies (`up`), reverts the last (`down`) or lists (`status`) migrations. The list is explicit,
 * not a glob, so it survives bundling. Applied names are kept in `schema_migrations`.
 */
export async function migrate(sequelize: Sequelize, migrations: Migration[], command: MigrateCommand, logger?: Logger): Promise<MigrationStatus> {
  const context: MigrationContext = { sequelize, sql: (text) => sequelize.query(text) };
  const umzug = new Umzug({
    migrations: migrations.map((m) => ({ name: m.name, up: () => m.up(context), down: () => m.down(context) })),
    context,
    storage: new SequelizeStorage({ sequelize, tableName: 'schema_migrations' }),
    logger: logger ? { info: (e) => logger.info(e, 'migration'), warn: (e) => logger.warn(e), error: (e) => logger.error(e), debug: () => undefined } : undefined,
  });
  if (command !== 'status') {
    await withAdvisoryLock(sequelize, `migrations:${sequelize.getDatabaseName()}`, () => (command === 'up' ? umzug.up() : umzug.down()));
    // Statements prepared before the schema changed are prepared again under new names.
    resetNamedStatements();
  }
  return {
    executed: (await umzug.executed()).map((m) => m.name),
    pending: (await umzug.pending()).map((m) => m.name),
  };
}

/**
 * The `migrate up|down|status` command of a service: creates the database if missing, runs the
 * command, prints the resulting status as JSON and resolves with the exit code.
 */
export async function runMigrateCommand(args: string[], { databaseUrl, migrations, logger }: { databaseUrl: string; migrations: Migration[]; logger: Logger }): Promise<number> {
  const command = args[0] ?? 'up';
  if (command !== 'up' && command !== 'down' && command !== 'status') {
    process.stderr.write(`usage: migrate up|down|status (got "${command}")\n`);
    return 64;
  }
  await ensureDatabase(databaseUrl);
  const sequelize = createSequelize(databaseUrl, { poolMax: 2 });
  try {
    const status = await migrate(sequelize, migrations, command, logger);
    process.stdout.write(`${JSON.stringify(status)}\n`);
    return 0;
  } finally {
    await sequelize.close();
  }
}
