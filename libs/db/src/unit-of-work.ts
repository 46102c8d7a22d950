import type { Sequelize, Transaction } from 'sequelize';
import { QueryTypes } from 'sequelize';

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

/**
 * The `Tx` of a sequelize transaction, and the function that runs its before-commit hooks. Its
 * statements go straight to the transaction's pg connection: the same connection, type parsers
 * and named prepared statements as `sequelize.query`, without the ORM's per-call work (≈ 550 → 300 µs
 * of Node CPU for the saga's six-statement transaction, tools/bench/README.md).
 */
function txOf(transaction: Transaction, afterCommit: (() => void)[]): { tx: Tx; beforeCommit: () => Promise<void> } {
  const connection = () => (transaction as unknown as { connection: PgConnection }).connection;
  const hooks: (() => Promise<void>)[] = [];
  const tx: Tx = {
    query: async <T extends object>(sql: string, params: unknown[] = []) => (await connection().query(sql, params)).rows as T[],
    execute: async (sql, params = []) => (await connection().query(sql, params)).rowCount ?? 0,
    beforeCommit: (fn) => void hooks.push(fn),
    afterCommit: (fn) => void afterCommit.push(fn),
  };
  const beforeCommit = async () => {
    for (let i = 0; i < hooks.length; i++) await hooks[i]();
  };
  return { tx, beforeCommit };
}

/** A {@link Db} over the process's sequelize instance (its one pool). */
export function dbOf(sequelize: Sequelize): Db {
  return {
    query: <T extends object>(sql: string, params: unknown[] = []) => sequelize.query<T>(sql, { bind: params, type: QueryTypes.SELECT }),
    execute: async (sql, params = []) => {
      const [, result] = (await sequelize.query(sql, { bind: params })) as [unknown, number | { rowCount?: number | null } | undefined];
      // Sequelize resolves an INSERT's count as a number, every other statement's as pg's result.
      return typeof result === 'number' ? result : (result?.rowCount ?? 0);
    },
    transaction: async (fn) => {
      // Not sequelize's afterCommit: it runs its hooks in a `finally`, so also when the COMMIT itself
      // fails (a deferred constraint, a serialization failure). These run only once it succeeded.
      const afterCommit: (() => void)[] = [];
      const result = await sequelize.transaction(async (transaction) => {
        const { tx, beforeCommit } = txOf(transaction, afterCommit);
        const value = await fn(tx);
        await beforeCommit();
        return value;
      });
      for (const hook of afterCommit) hook();
      return result;
    },
  };
}
