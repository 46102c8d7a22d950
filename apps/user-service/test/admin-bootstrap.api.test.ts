import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { ConfigError } from '@cloudretail/config';
import { build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

type Running = Awaited<ReturnType<typeof start>>;
const running: Running[] = [];
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('users_admin');
});
afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await db?.drop();
});

const startWith = async (env: Record<string, string>) => {
  const service = await start(testEnv(db.url, { LOGIN_THROTTLE_KEY_PREFIX: `test:user-admin:${randomUUID()}`, ...env }));
  running.push(service);
  return service;
};

describe('admin bootstrap', () => {
  it('when two replicas start at once with ADMIN_EMAIL and ADMIN_PASSWORD, then exactly one admin exists and it can log in as admin', async () => {
    const admin = { email: build.user().email, password: 'admin password 123' };
    const env = { ADMIN_EMAIL: ` ${admin.email.toUpperCase()}`, ADMIN_PASSWORD: admin.password };

    const [first] = await Promise.all([startWith(env), startWith(env)]);
    await startWith(env); // a later restart finds it and changes nothing

    const rows = await first.ctx.db.query<{ id: string; role: string }>('SELECT id, role FROM users WHERE email = $1', [admin.email]);
    expect(rows).toEqual([{ id: expect.any(String), role: 'admin' }]);
    const events = await first.ctx.db.query("SELECT 1 FROM outbox WHERE type = 'UserRegistered' AND aggregate_id = $1", [rows[0].id]);
    expect(events).toHaveLength(1);
    const login = await request(first.url).post('/auth/login').send(admin);
    expect(login.status).toBe(200);
    expect(login.body.user).toMatchObject({ id: rows[0].id, email: admin.email, role: 'admin' });
  });

  it('when the admin email already belongs to a customer, then start-up leaves that account as it is', async () => {
    const service = await startWith({});
    const customer = build.user();
    expect((await request(service.url).post('/auth/register').send(customer)).status).toBe(201);

    const restarted = await startWith({ ADMIN_EMAIL: customer.email, ADMIN_PASSWORD: 'a different password' });

    const login = await request(restarted.url).post('/auth/login').send({ email: customer.email, password: customer.password });
    expect(login.body.user.role).toBe('customer');
  });

  it('when only one of ADMIN_EMAIL and ADMIN_PASSWORD is set, then start-up fails naming the missing one', async () => {
    await expect(startWith({ ADMIN_EMAIL: build.user().email })).rejects.toThrow(ConfigError);
    await expect(startWith({ ADMIN_PASSWORD: 'admin password 123' })).rejects.toThrow(/ADMIN_EMAIL: is required when ADMIN_PASSWORD is set/);
  });
});
