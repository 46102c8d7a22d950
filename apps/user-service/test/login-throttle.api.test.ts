import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

// The gateway names the client in X-Forwarded-For; these tests call from loopback, which the
// default TRUST_PROXY trusts, so each header value is one client.
type Running = Awaited<ReturnType<typeof start>>;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const running: Running[] = [];
const ADMIN = { email: `${randomUUID().slice(0, 8)}-admin@example.com`, password: 'admin password 123' };

const startService = async (overrides: Record<string, string> = {}) => {
  const s = await start(testEnv(db.url, { LOGIN_THROTTLE_KEY_PREFIX: `test:user-login:${randomUUID()}`, ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, ...overrides }));
  running.push(s);
  return s;
};
const login = (s: Running, from: string | undefined, body: { email: string; password: string }) => {
  const req = request(s.url).post('/auth/login');
  if (from) req.set('x-forwarded-for', from);
  return req.send(body);
};
const register = async (s: Running) => {
  const input = build.user();
  expect((await request(s.url).post('/auth/register').send(input)).status).toBe(201);
  return { email: input.email, password: input.password };
};

beforeAll(async () => {
  db = await createTestDatabase('users_throttle');
});
afterAll(async () => {
  for (const s of running) await s.stop();
  await db?.drop();
});

describe('login throttling behind the gateway', () => {
  it('when one client fails 20+ logins with made-up emails, then that client is throttled while another client and the admin still sign in', async () => {
    const s = await startService();
    const owner = await register(s);
    const attacker = '203.0.113.7';

    const statuses = [];
    for (let i = 0; i < 21; i++) statuses.push((await login(s, attacker, { email: `${randomUUID()}@example.com`, password: 'guess' })).status);

    expect(statuses.slice(0, 20).every((st) => st === 401)).toBe(true);
    expect(statuses[20]).toBe(429);
    expect((await login(s, attacker, owner)).status).toBe(429);
    expect((await login(s, '198.51.100.20', owner)).status).toBe(200);
    expect((await login(s, '198.51.100.21', ADMIN)).status).toBe(200);
  });

  it("when an attacker hammers one account from many addresses, then it is locked for new clients but the owner's known client still signs in", async () => {
    const s = await startService();
    const owner = await register(s);
    const home = '192.0.2.10';
    expect((await login(s, home, owner)).status).toBe(200); // the owner's client becomes known

    const wrong = { email: owner.email, password: 'not the password' };
    const fromOne = [];
    for (let i = 0; i < 7; i++) fromOne.push((await login(s, '203.0.113.50', wrong)).status);
    const fromOthers = [];
    for (let i = 0; i < 5; i++) fromOthers.push((await login(s, `203.0.113.${60 + i}`, wrong)).status);

    expect(fromOne).toEqual([401, 401, 401, 401, 401, 429, 429]);
    expect(fromOthers.every((st) => st === 429)).toBe(true);
    expect((await login(s, '198.51.100.99', owner)).status).toBe(429); // an unknown client, even with the password
    const ownerLogin = await login(s, home, owner);
    expect(ownerLogin.status).toBe(200);
    expect(ownerLogin.body.user.email).toBe(owner.email);
  });

  it('when a known client itself keeps failing, then it is throttled too', async () => {
    const s = await startService();
    const owner = await register(s);
    const home = '192.0.2.11';
    expect((await login(s, home, owner)).status).toBe(200);

    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await login(s, home, { email: owner.email, password: 'typo' })).status);

    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
  });

  it('when the peer is not a trusted proxy, then its X-Forwarded-For is ignored and it is throttled by its own address', async () => {
    const s = await startService({ TRUST_PROXY: '10.255.255.1', LOGIN_MAX_FAILURES_PER_IP: '3' });
    const owner = await register(s);

    for (let i = 0; i < 3; i++) expect((await login(s, `203.0.113.${100 + i}`, { email: `${randomUUID()}@example.com`, password: 'guess' })).status).toBe(401);
    const res = await login(s, '198.51.100.1', owner);

    expect(res.status).toBe(429);
  });

  it('when TRUST_PROXY is malformed, then start-up fails naming it', async () => {
    await expect(start(testEnv(db.url, { TRUST_PROXY: 'loopback, not-an-address' }))).rejects.toThrow(/TRUST_PROXY/);
  });
});
