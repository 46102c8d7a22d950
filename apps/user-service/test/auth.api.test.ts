import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { TEST_JWT_KEYS, build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

type Running = Awaited<ReturnType<typeof start>>;
let service: Running;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
// Each service instance gets its own counters: every request here comes from the same loopback IP.
const throttleEnv = (overrides: Record<string, string> = {}) => ({ LOGIN_THROTTLE_KEY_PREFIX: `test:user-login:${randomUUID()}`, LOGIN_MAX_FAILURES_PER_IP: '1000', ...overrides });

beforeAll(async () => {
  db = await createTestDatabase('users_auth');
  service = await start(testEnv(db.url, throttleEnv()));
});
afterAll(async () => {
  await service?.stop();
  await db?.drop();
});

const api = (s: Running = service) => request(s.url);
const register = async (overrides: Record<string, unknown> = {}) => {
  const input = build.user(overrides);
  const res = await api().post('/auth/register').send(input);
  expect(res.status).toBe(201);
  return { input, ...(res.body as { user: { id: string; email: string }; token: string }) };
};
const credentials = ({ email, password }: { email: string; password: string }) => ({ email, password });
const query = <T extends object>(sql: string, params: unknown[], s: Running = service) => s.ctx.db.query<T>(sql, params);

describe('POST /auth/register', () => {
  it('when the input is valid, then 201 with a customer user and a token for it, and UserRegistered is in the outbox', async () => {
    const input = build.user();

    const res = await api().post('/auth/register').send(input);

    expect(res.status).toBe(201);
    expect(res.body.user).toEqual({ id: expect.any(String), email: input.email, name: input.name, role: 'customer', preferences: {}, createdAt: expect.any(String) });
    const claims = jwt.verify(res.body.token, TEST_JWT_KEYS.publicKey, { algorithms: ['RS256'] }) as jwt.JwtPayload;
    expect(claims).toMatchObject({ sub: res.body.user.id, role: 'customer', exp: expect.any(Number) });
    const events = await query<{ type: string; envelope: { payload: unknown } }>('SELECT type, envelope FROM outbox WHERE aggregate_id = $1', [res.body.user.id]);
    expect(events).toEqual([{ type: 'UserRegistered', envelope: expect.objectContaining({ payload: { userId: res.body.user.id, email: input.email, role: 'customer' } }) }]);
  });

  it('when the email has capitals and surrounding spaces, then it is stored trimmed and lower-cased', async () => {
    const email = build.user().email;

    const res = await api().post('/auth/register').send(build.user({ email: `  ${email.toUpperCase()} ` }));

    expect(res.status).toBe(201);
    expect(res.body.user.email).toBe(email);
  });

  it('when the email is already registered, even differing only in case and spaces, then 409 and no second user or event', async () => {
    const { input } = await register();

    const same = await api().post('/auth/register').send(build.user({ email: input.email }));
    const variant = await api().post('/auth/register').send(build.user({ email: ` ${input.email.toUpperCase()}  ` }));

    expect(same.status).toBe(409);
    expect(variant.status).toBe(409);
    expect(variant.body.error).toMatchObject({ code: 'conflict' });
    const [{ users, events }] = await query<{ users: number; events: number }>(
      "SELECT (SELECT count(*)::int FROM users WHERE email = $1) AS users, (SELECT count(*)::int FROM outbox WHERE envelope->'payload'->>'email' = $1) AS events",
      [input.email],
    );
    expect({ users, events }).toEqual({ users: 1, events: 1 });
  });

  it('when the password is short, the email malformed and the name missing, then 400 lists all three', async () => {
    const res = await api().post('/auth/register').send({ email: 'not-an-email', password: 'short' });

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['email', 'name', 'password']);
  });
});

describe('POST /auth/login', () => {
  it('when the credentials are right, then 200 with the user and a token that opens /users/me', async () => {
    const { input, user } = await register();

    const res = await api().post('/auth/login').send({ email: ` ${input.email.toUpperCase()}`, password: input.password });

    expect(res.status).toBe(200);
    expect(res.body.user).toEqual(user);
    const me = await api().get('/users/me').set('authorization', `Bearer ${res.body.token}`);
    expect(me.body).toEqual(user);
  });

  it('when the password is wrong or the email unknown, then 401 with the very same body', async () => {
    const { input } = await register();

    const wrongPassword = await api().post('/auth/login').send({ email: input.email, password: 'not the password' });
    const unknownEmail = await api().post('/auth/login').send({ email: build.user().email, password: input.password });

    expect(wrongPassword.status).toBe(401);
    expect(unknownEmail.status).toBe(401);
    expect(wrongPassword.body).toEqual({ error: { code: 'unauthorized', message: 'Invalid email or password' } });
    expect(unknownEmail.body).toEqual(wrongPassword.body);
  });

  it('when the body lacks both fields, then 400 naming both', async () => {
    const res = await api().post('/auth/login').send({});

    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['email', 'password']);
  });
});

describe('login throttling', () => {
  const failLogin = (email: string, s?: Running) => api(s).post('/auth/login').send({ email, password: 'wrong password' });

  it('when an account has had 5 failed logins, then the next attempt is 429 with retry-after, even with the right password', async () => {
    const { input } = await register();
    for (let i = 0; i < 5; i++) expect((await failLogin(input.email)).status).toBe(401);

    const res = await api().post('/auth/login').send({ email: input.email, password: input.password });

    expect(res.status).toBe(429);
    expect(res.body).toEqual({ error: { code: 'rate_limited', message: expect.any(String), details: { retryAfterSeconds: expect.any(Number) } } });
    const retryAfter = Number(res.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(900);
  });

  it('when a login succeeds, then the per-account counter starts again', async () => {
    const { input } = await register();
    for (let i = 0; i < 4; i++) await failLogin(input.email);

    expect((await api().post('/auth/login').send(credentials(input))).status).toBe(200);

    const after = [];
    for (let i = 0; i < 6; i++) after.push((await failLogin(input.email)).status);
    expect(after).toEqual([401, 401, 401, 401, 401, 429]);
  });

  it('when many wrong attempts for one account arrive at once, then only 5 are checked and the rest get 429', async () => {
    const { input } = await register();

    const statuses = (await Promise.all(Array.from({ length: 8 }, () => failLogin(input.email)))).map((r) => r.status);

    expect(statuses.filter((s) => s === 401)).toHaveLength(5);
    expect(statuses.filter((s) => s === 429)).toHaveLength(3);
  });

  it('when failures from one IP spread over several accounts reach the IP limit, then further logins from it are 429', async () => {
    const strict = await start(testEnv(db.url, throttleEnv({ LOGIN_MAX_FAILURES_PER_IP: '3' })));
    try {
      const { input } = await register();
      for (let i = 0; i < 3; i++) expect((await failLogin(build.user().email, strict)).status).toBe(401);

      const res = await api(strict).post('/auth/login').send({ email: input.email, password: input.password });

      expect(res.status).toBe(429);
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await strict.stop();
    }
  });
});

describe('password hashes', () => {
  it('stores a salted scrypt hash with its parameters, and never returns it', async () => {
    const input = build.user();
    const registered = await api().post('/auth/register').send(input);
    const login = await api().post('/auth/login').send(credentials(input));
    const me = await api().get('/users/me').set('authorization', `Bearer ${login.body.token}`);
    const patched = await api().patch('/users/me').set('authorization', `Bearer ${login.body.token}`).send({ name: 'Renamed' });

    const [{ password_hash: hash }] = await query<{ password_hash: string }>('SELECT password_hash FROM users WHERE id = $1', [registered.body.user.id]);
    expect(hash).toMatch(/^scrypt\$15\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{88}$/);
    for (const res of [registered, login, me, patched]) {
      expect(res.status).toBeLessThan(300);
      const text = JSON.stringify(res.body);
      expect(text).not.toContain(hash.split('$')[5]);
      expect(text).not.toMatch(/scrypt|password/i);
    }
  });

  it('when the cost is raised, then an old hash still logs in and is upgraded to the new cost', async () => {
    const input = build.user();
    const cheap = await start(testEnv(db.url, throttleEnv({ PASSWORD_HASH_COST: '14' })));
    try {
      expect((await api(cheap).post('/auth/register').send(input)).status).toBe(201);
    } finally {
      await cheap.stop();
    }
    const hashOf = async () => (await query<{ password_hash: string }>('SELECT password_hash FROM users WHERE email = $1', [input.email]))[0].password_hash;
    expect(await hashOf()).toMatch(/^scrypt\$14\$/);

    expect((await api().post('/auth/login').send(credentials(input))).status).toBe(200);

    // The upgrade runs after the response, so wait for it briefly.
    let hash = await hashOf();
    for (let i = 0; i < 40 && !hash.startsWith('scrypt$15$'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      hash = await hashOf();
    }
    expect(hash).toMatch(/^scrypt\$15\$/);
    expect((await api().post('/auth/login').send(credentials(input))).status).toBe(200);
  });
});
