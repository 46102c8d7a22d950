import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

let service: Awaited<ReturnType<typeof start>>;
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('users_deep');
  service = await start(testEnv(db.url, { LOGIN_THROTTLE_KEY_PREFIX: `test:user-deep:${randomUUID()}` }));
});
afterAll(async () => {
  await service?.stop();
  await db?.drop();
});

describe('PATCH /users/me with deeply nested preferences', () => {
  it('when preferences nest 10,000 deep, then 400 in the error envelope (not a 500 stack overflow) and the profile is unchanged', async () => {
    const signUp = await request(service.url).post('/auth/register').send(build.user());
    const bearer = `Bearer ${signUp.body.token}`;
    const deep = '{"preferences":' + '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000) + '}';

    const res = await request(service.url).patch('/users/me').set('authorization', bearer).set('content-type', 'application/json').send(deep);

    expect(res.status).toBe(400);
    expect(res.body).toEqual({ error: { code: 'validation_failed', message: expect.any(String), details: [expect.objectContaining({ location: 'body' })] } });
    expect((await request(service.url).get('/users/me').set('authorization', bearer)).body.preferences).toEqual({});
  });
});
