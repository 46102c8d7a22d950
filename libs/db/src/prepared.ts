import pg from 'pg';

/** Distinct statement texts named per process; beyond this they run unnamed (as sequelize sends them). */
export const MAX_NAMED_STATEMENTS = 200;

const names = new Map<string, string>();
let generation = 0;

/** The name of `text`'s server-side prepared statement, or undefined once the table is full. */
function nameOf(text: string): string | undefined {
  let name = names.get(text);
  if (name === undefined && names.size < MAX_NAMED_STATEMENTS) names.set(text, (name = `cr${generation}_${names.size}`));
  return name;
}

/**
 * Forgets every name, so each text is prepared again under a new one on its next use. Called after
 * migrations, and when Postgres reports a statement whose result shape changed under it.
 */
export function resetNamedStatements(): void {
  names.clear();
  generation += 1;
}

type Callback = (error: Error | null, result?: unknown) => void;
type Query = (config: unknown, values?: unknown, callback?: Callback) => unknown;

/**
 * pg's Client, except that a query with parameters goes out as a *named* prepared statement: each
 * connection parses and plans a text once and then only binds and executes it. Sequelize sends every
 * `bind` query through here (`dialectModule`, see createSequelize). On this machine that halves
 * Postgres's CPU for the saga's lock-and-update transaction (≈ 630 → 270 µs; tools/bench/README.md).
 *
 * A statement whose result columns change under it (a migration from another process altering a
 * table a `SELECT *` reads) fails once with `0A000 cached plan must not change result type`; that
 * error resets every name, so the retry prepares the new shape.
 */
class NamingClient extends pg.Client {}
const query = pg.Client.prototype.query as unknown as Query;
(NamingClient.prototype as unknown as { query: Query }).query = function (this: pg.Client, config, values, callback) {
  const name = typeof config === 'string' && Array.isArray(values) && values.length > 0 ? nameOf(config) : undefined;
  if (!name) return query.call(this, config, values, callback);
  const done: Callback | undefined = callback && ((error, result) => (onError(error), callback(error, result)));
  const result = query.call(this, { name, text: config, values }, done);
  if (result instanceof Promise) result.catch(onError);
  return result;
};

function onError(error: unknown): void {
  if ((error as { code?: string } | null)?.code === '0A000') resetNamedStatements();
}

/** The `pg` module sequelize loads, with {@link NamingClient} as its Client (everything else is pg's own). */
export const namingPg: typeof pg = Object.assign(Object.create(pg) as typeof pg, { Client: NamingClient });
