import { Client } from 'pg';
import { createTestDatabase } from '@cloudretail/testing';
import { type Migration, createSequelize, ensureDatabase, migrate } from '../src';

const migrations: Migration[] = [
  {
    name: '001-create-widgets',
    up: ({ sql }) => sql('CREATE TABLE widgets (id serial PRIMARY KEY, name text NOT NULL)'),
    down: ({ sql }) => sql('DROP TABLE widgets'),
  },
  {
    name: '002-add-widget-colour',
    up: ({ sql }) => sql('ALTER TABLE widgets ADD COLUMN colour text'),
    down: ({ sql }) => sql('ALTER TABLE widgets DROP COLUMN colour'),
  },
];

describe('migrate', () => {
  it('applies, reports and reverts migrations in order', async () => {
    const db = await createTestDatabase('db');
    const sequelize = createSequelize(db.url);
    try {
      expect(await migrate(sequelize, migrations, 'status')).toEqual({ executed: [], pending: ['001-create-widgets', '002-add-widget-colour'] });
      expect((await migrate(sequelize, migrations, 'up')).executed).toHaveLength(2);
      await sequelize.query("INSERT INTO widgets (name, colour) VALUES ('a', 'red')");
      expect(await migrate(sequelize, migrations, 'down')).toEqual({ executed: ['001-create-widgets'], pending: ['002-add-widget-colour'] });
      const [rows] = await sequelize.query('SELECT * FROM widgets');
      expect(rows).toEqual([{ id: 1, name: 'a' }]);
    } finally {
      await sequelize.close();
      await db.drop();
    }
  });

  it('when two replicas migrate at once, then each migration runs exactly once', async () => {
    const db = await createTestDatabase('db');
    const runs: string[] = [];
    const counted = migrations.map((m) => ({ ...m, up: async (ctx: Parameters<Migration['up']>[0]) => (runs.push(m.name), m.up(ctx)) }));
    const a = createSequelize(db.url);
    const b = createSequelize(db.url);
    try {
      const [ra, rb] = await Promise.all([migrate(a, counted, 'up'), migrate(b, counted, 'up')]);
      expect(runs.sort()).toEqual(['001-create-widgets', '002-add-widget-colour']);
      expect(ra.pending).toEqual([]);
      expect(rb.pending).toEqual([]);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await db.drop();
    }
  });

  it('when a migration fails, then it is not recorded and the error surfaces', async () => {
    const db = await createTestDatabase('db');
    const sequelize = createSequelize(db.url);
    const broken: Migration[] = [migrations[0], { name: '002-broken', up: ({ sql }) => sql('ALTER TABLE nope ADD COLUMN x int'), down: async () => undefined }];
    try {
      await expect(migrate(sequelize, broken, 'up')).rejects.toThrow(/nope/);
      expect(await migrate(sequelize, broken, 'status')).toEqual({ executed: ['001-create-widgets'], pending: ['002-broken'] });
    } finally {
      await sequelize.close();
      await db.drop();
    }
  });
});

describe('ensureDatabase', () => {
  it('creates a missing database, and is a no-op (also concurrently) when it exists', async () => {
    const name = `ensure_${Date.now()}_${process.pid}`;
    const url = `postgres://postgres@127.0.0.1:5432/${name}`;
    await Promise.all([ensureDatabase(url), ensureDatabase(url), ensureDatabase(url)]);
    const admin = new Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/postgres' });
    await admin.connect();
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      expect(rowCount).toBe(1);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS "${name}"`);
      await admin.end();
    }
  });

  it('rejects a database name that is not a plain identifier', async () => {
    await expect(ensureDatabase('postgres://postgres@127.0.0.1:5432/x";DROP')).rejects.toThrow(/DATABASE_URL/);
  });
});
