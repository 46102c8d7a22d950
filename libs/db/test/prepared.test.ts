import { Client } from 'pg';
import { createTestDatabase } from '@cloudretail/testing';
import { MAX_NAMED_STATEMENTS, type Migration, QueryTypes, type Sequelize, createSequelize, migrate, resetNamedStatements } from '../src';

const widgets: Migration[] = [
  {
    name: '001-create-widgets',
    up: ({ sql }) => sql("CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL, made_at timestamptz NOT NULL DEFAULT '2026-01-02T03:04:05Z')"),
    down: ({ sql }) => sql('DROP TABLE widgets'),
  },
  {
    name: '002-add-widget-colour',
    up: ({ sql }) => sql('ALTER TABLE widgets ADD COLUMN colour text'),
    down: ({ sql }) => sql('ALTER TABLE widgets DROP COLUMN colour'),
  },
];

const SELECT_WIDGET = 'SELECT * FROM widgets WHERE id = $1';

describe('named prepared statements', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  /** The app's pool: one connection, so every query runs in the same session. */
  let sequelize: Sequelize;
  /** Migrations run through their own pool (they hold a lock transaction while they work). */
  let migrator: Sequelize;

  beforeAll(async () => {
    db = await createTestDatabase('db');
    sequelize = createSequelize(db.url, { poolMax: 1 });
    migrator = createSequelize(db.url);
    await migrate(migrator, widgets.slice(0, 1), 'up');
    await sequelize.query("INSERT INTO widgets (name) VALUES ('a'), ('b')");
  });
  afterAll(async () => {
    await Promise.all([sequelize.close(), migrator.close()]);
    await db.drop();
  });

  const prepared = async () =>
    sequelize.query<{ name: string; statement: string }>('SELECT name, statement FROM pg_prepared_statements ORDER BY name', { type: QueryTypes.SELECT });
  const widget = (id: number) => sequelize.query<Record<string, unknown>>(SELECT_WIDGET, { bind: [id], type: QueryTypes.SELECT });

  it('when a query has bind parameters, then the connection prepares it once under a name and reuses it', async () => {
    for (let i = 0; i < 3; i++) expect(await widget(1)).toEqual([{ id: 1, name: 'a', made_at: new Date('2026-01-02T03:04:05Z') }]);
    const mine = (await prepared()).filter((s) => s.statement === SELECT_WIDGET);
    expect(mine).toHaveLength(1);
    expect(mine[0].name).toMatch(/^cr\d+_\d+$/);
    // A query without parameters stays an unnamed simple query.
    await sequelize.query('SELECT count(*) FROM widgets');
    expect((await prepared()).some((s) => s.statement.includes('count(*)'))).toBe(false);
  });

  it('when this process migrates, then statements prepared before are prepared again and see the new columns', async () => {
    expect(Object.keys((await widget(2))[0])).toEqual(['id', 'name', 'made_at']);
    await migrate(migrator, widgets, 'up');
    expect(await widget(2)).toEqual([{ id: 2, name: 'b', made_at: new Date('2026-01-02T03:04:05Z'), colour: null }]);
  });

  it('when another process changes a statement’s result columns, then one call fails and the next prepares the new shape', async () => {
    expect(await widget(1)).toHaveLength(1);
    const other = new Client({ connectionString: db.url });
    await other.connect();
    await other.query('ALTER TABLE widgets ADD COLUMN size int');
    await other.end();
    await expect(widget(1)).rejects.toMatchObject({ original: { code: '0A000' } });
    expect(await widget(1)).toEqual([{ id: 1, name: 'a', made_at: new Date('2026-01-02T03:04:05Z'), colour: null, size: null }]);
  });

  it(`when more than ${MAX_NAMED_STATEMENTS} distinct texts are used, then the rest run unnamed and still answer`, async () => {
    resetNamedStatements();
    const before = (await prepared()).length;
    for (let i = 0; i <= MAX_NAMED_STATEMENTS; i++) {
      const [row] = await sequelize.query<{ n: number }>(`SELECT $1::int + ${i} AS n`, { bind: [1], type: QueryTypes.SELECT });
      expect(row.n).toBe(1 + i);
    }
    expect((await prepared()).length - before).toBe(MAX_NAMED_STATEMENTS);
  });
});
