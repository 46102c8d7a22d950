import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { createIssuer, generateSigningKeyPair } from '@cloudretail/auth';
import { signTestToken, build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

type Running = Awaited<ReturnType<typeof start>>;
let service: Running;
let db: Awaited<ReturnType<typeof createTestDatabase>>;

beforeAll(async () => {
  db = await createTestDatabase('users_profile');
  service = await start(testEnv(db.url, { LOGIN_THROTTLE_KEY_PREFIX: `test:user-profile:${randomUUID()}` }));
});
afterAll(async () => {
  await service?.stop();
  await db?.drop();
});

const api = () => request(service.url);
const signUp = async () => {
  const res = await api().post('/auth/register').send(build.user());
  expect(res.status).toBe(201);
  return { user: res.body.user, bearer: `Bearer ${res.body.token}` };
};

describe('GET /users/me', () => {
  it('when the token is valid, then 200 with exactly the public fields of the caller', async () => {
    const { user, bearer } = await signUp();

    const res = await api().get('/users/me').set('authorization', bearer);

    expect(res.status).toBe(200);
    expect(res.body).toEqual(user);
    expect(Object.keys(res.body).sort()).toEqual(['createdAt', 'email', 'id', 'name', 'preferences', 'role']);
  });

  it('when there is no token, then 401 in the error envelope', async () => {
    const res = await api().get('/users/me');

    expect(res.status).toBe(401);
    expect(res.body).toEqual({ error: { code: 'unauthorized', message: expect.any(String) } });
  });

  it('when the token is expired, garbage, or signed with another key, then 401', async () => {
    const { user } = await signUp();
    const expired = signTestToken({ userId: user.id, role: 'customer' }, { expiresInSeconds: -10 });
    const forged = createIssuer({ privateKey: generateSigningKeyPair().privateKey }).sign({ userId: user.id, role: 'admin' });

    const responses = await Promise.all(
      [`Bearer ${expired}`, 'Bearer not.a.jwt', `Bearer ${forged}`, 'Basic dXNlcjpwYXNz'].map((header) => api().get('/users/me').set('authorization', header)),
    );

    expect(responses.map((r) => r.status)).toEqual([401, 401, 401, 401]);
    expect(responses[0].body.error.message).toBe('Token expired');
  });

  it('when the token is valid but its user does not exist, then 404', async () => {
    const token = signTestToken({ userId: randomUUID(), role: 'customer' });

    const res = await api().get('/users/me').set('authorization', `Bearer ${token}`);

    expect(res.status).toBe(404);
  });
});

describe('PATCH /users/me', () => {
  it('when name and preferences are sent, then 200 with both updated, and the next read sees them', async () => {
    const { user, bearer } = await signUp();
    const preferences = { newsletter: true, locale: 'de-DE', sizes: { shoe: 42 } };

    const res = await api().patch('/users/me').set('authorization', bearer).send({ name: '  Grace Hopper ', preferences });

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ...user, name: 'Grace Hopper', preferences });
    expect((await api().get('/users/me').set('authorization', bearer)).body).toEqual(res.body);
  });

  it('when only preferences are sent, then they replace the stored object and the name stays', async () => {
    const { user, bearer } = await signUp();
    await api().patch('/users/me').set('authorization', bearer).send({ preferences: { a: 1, b: 2 } });

    const res = await api().patch('/users/me').set('authorization', bearer).send({ preferences: { b: 3 } });

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: user.name, preferences: { b: 3 } });
  });

  it.each([
    ['an array', [1, 2]],
    ['a string', 'dark-mode'],
    ['null', null],
  ])('when preferences is %s, then 400 naming preferences and nothing changes', async (_what, preferences) => {
    const { user, bearer } = await signUp();

    const res = await api().patch('/users/me').set('authorization', bearer).send({ preferences });

    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([expect.objectContaining({ location: 'body', path: 'preferences' })]);
    expect((await api().get('/users/me').set('authorization', bearer)).body).toEqual(user);
  });

  it('when the body is empty, has an unknown field, or tries to change the role, then 400', async () => {
    const { bearer } = await signUp();

    const statuses = await Promise.all([{}, { nickname: 'x' }, { role: 'admin' }, { name: '' }].map((body) => api().patch('/users/me').set('authorization', bearer).send(body)));

    expect(statuses.map((r) => r.status)).toEqual([400, 400, 400, 400]);
    expect((await api().get('/users/me').set('authorization', bearer)).body.role).toBe('customer');
  });

  it('when there is no token, then 401', async () => {
    expect((await api().patch('/users/me').send({ name: 'Nobody' })).status).toBe(401);
  });
});

describe('operations', () => {
  it('serves an OpenAPI document with every route, and the user schema has no password field', async () => {
    const res = await api().get('/openapi.json');

    expect(res.status).toBe(200);
    expect(Object.keys(res.body.paths).sort()).toEqual(['/auth/login', '/auth/logout', '/auth/register', '/users/me', '/users/{id}/role']);
    expect(Object.keys(res.body.paths['/users/me']).sort()).toEqual(['get', 'patch']);
    expect(res.body.paths['/auth/register'].post.requestBody.content['application/json'].schema.required).toEqual(['email', 'password', 'name']);
    expect(JSON.stringify(res.body.paths['/users/me'].get.responses['200'])).not.toMatch(/password/i);
  });

  it('reports readiness with Postgres and Redis', async () => {
    const ready = await api().get('/health/ready');

    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ postgres: { status: 'up' }, redis: { status: 'up' } });
  });
});
