import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { type Sequelize, createSequelize, migrate } from '@cloudretail/db';
import { signTestToken, build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { migrations } from '../src/data-access/migrations';
import { start } from '../src/main';

let db: Awaited<ReturnType<typeof createTestDatabase>>;
let sequelize: Sequelize;

beforeAll(async () => {
  db = await createTestDatabase('users_migration');
  sequelize = createSequelize(db.url, { poolMax: 2 });
});
afterAll(async () => {
  await sequelize?.close();
  await db?.drop();
});

/** What the version before 002 writes: it knows nothing about preferences. */
const insertTheOldWay = async (email: string) => {
  const id = randomUUID();
  await sequelize.query("INSERT INTO users (id, email, name, password_hash) VALUES ($1, $2, 'Old Timer', $3)", { bind: [id, email, 'scrypt$15$8$1$c2FsdA==$a2V5'] });
  return id;
};

describe('migration 002-add-user-preferences', () => {
  it('when it runs over rows written by the previous version, then they get {} and that version keeps writing and reading', async () => {
    const before = migrations.slice(0, migrations.findIndex((m) => m.name === '002-add-user-preferences'));
    expect(before.map((m) => m.name)).toEqual(['000-create-outbox', '000-outbox-pending-by-aggregate', '001-create-users']);
    await migrate(sequelize, before, 'up');
    const oldId = await insertTheOldWay(build.user().email);

    // The new version starts and applies 002 itself, as MIGRATE_ON_START does.
    const service = await start(testEnv(db.url, { LOGIN_THROTTLE_KEY_PREFIX: `test:user-migration:${randomUUID()}` }));
    try {
      const token = signTestToken({ userId: oldId, role: 'customer' });
      const me = await request(service.url).get('/users/me').set('authorization', `Bearer ${token}`);
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({ id: oldId, name: 'Old Timer', preferences: {} });

      const laterOldId = await insertTheOldWay(build.user().email);
      const rows = await sequelize.query('SELECT id, preferences FROM users WHERE id IN ($1, $2) ORDER BY id', { bind: [oldId, laterOldId], type: 'SELECT' });
      expect(rows).toEqual(expect.arrayContaining([{ id: oldId, preferences: {} }, { id: laterOldId, preferences: {} }]));
      // The old version's reads name their columns, so the new one does not disturb them.
      const [oldRead] = await sequelize.query('SELECT id, email, name, role, password_hash, created_at FROM users WHERE id = $1', { bind: [laterOldId], type: 'SELECT' });
      expect(oldRead).toMatchObject({ id: laterOldId, role: 'customer' });
    } finally {
      await service.stop();
    }
    expect((await migrate(sequelize, migrations, 'status')).pending).toEqual([]);
  });
});
