import type { Sequelize } from 'sequelize';

/**
 * One database transaction as the domain sees it: parameterised statements, and hooks around the
 * commit. Repositories and use cases take a `Tx` (or a {@link Db} for reads outside one), so the
 * domain never imports the ORM.
 */
export interface Tx {
  /** The rows of a parameterised statement (`$1`, `$2`…; a named prepared statement, see prepared.ts). */
  query<T extends object = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Runs a statement; resolves the number of rows it touched. */
  execute(sql: string, params?: unknown[]): Promise<number>;
  /**
   * Runs `fn` before the commit, after everything else the transaction does: writes that many
   * callers contribute to go out as one statement (the outbox's events). Hooks added by a hook run too.
   */
  beforeCommit(fn: () => Promise<void>): void;
  /** Runs `fn` once the transaction has committed (never when it rolls back). */
  afterCommit(fn: () => void): void;
}

/** Statements outside a transaction (each one commits on its own), and the way to open one. */
export interface Db {
  query<T extends object = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  execute(sql: string, params?: unknown[]): Promise<number>;
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T>;
}

interface PgResult {
  rows: object[];
  rowCount: number | null;
}
interface PgConnection {
  query(text: string, values?: unknown[]): Promise<PgResult>;
}

/** Sequelize's connection pool, as the unit of work uses it. */
interface Pool {
  getConnection(options?: { type?: string }): Promise<PgConnection>;
  releaseConnection(connection: PgConnection): Promise<void>;
  destroyConnection(connection: PgConnection): Promise<void>;
}

/**
 * A {@link Db} over the process's sequelize instance: its one pool, its pg connections (with their
 * type parsers and named prepared statements), without the ORM's per-call work. A transaction is
 * BEGIN … COMMIT on one pooled connection; its statements, and the statements outside one, go
 * straight to pg. In the checkout bench this took order-service's share of sequelize from a third
 * of its CPU to near nothing (tools/bench/README.md). Migrations stay on sequelize (umzug).
 */
export function dbOf(sequelize: Sequelize): Db {
  const pool = sequelize.connectionManager as unknown as Pool;

  async function withConnection<T>(fn: (connection: PgConnection) => Promise<T>): Promise<T> {
    const connection = await pool.getConnection({ type: 'SELECT' });
    try {
      return await fn(connection);
    } finally {
      await pool.releaseConnection(connection);
    }
  }

  return {
    query: <T extends object>(sql: string, params: unknown[] = []) => withConnection(async (c) => (await c.query(sql, params)).rows as T[]),
    execute: (sql, params = []) => withConnection(async (c) => (await c.query(sql, params)).rowCount ?? 0),
    async transaction(fn) {
      const connection = await pool.getConnection();
      const before: (() => Promise<void>)[] = [];
      const after: (() => void)[] = [];
      const tx: Tx = {
        query: async <T extends object>(sql: string, params: unknown[] = []) => (await connection.query(sql, params)).rows as T[],
        execute: async (sql, params = []) => (await connection.query(sql, params)).rowCount ?? 0,
        beforeCommit: (hook) => void before.push(hook),
        afterCommit: (hook) => void after.push(hook),
      };
      let result;
      try {
        await connection.query('BEGIN');
        result = await fn(tx);
        for (let i = 0; i < before.length; i++) await before[i](); // hooks may add hooks
        await connection.query('COMMIT');
      } catch (error) {
        // A connection that cannot even roll back is in an unknown state: it leaves the pool.
        const rolledBack = await connection.query('ROLLBACK').then(
          () => true,
          () => false,
        );
        await (rolledBack ? pool.releaseConnection(connection) : pool.destroyConnection(connection));
        throw error;
      }
      await pool.releaseConnection(connection);
      // Only once the COMMIT succeeded (never after a rollback or a failed COMMIT).
      for (const hook of after) hook();
      return result;
    },
  };
}
