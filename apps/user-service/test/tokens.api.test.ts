import { createHmac, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { createAuth, remoteKeys } from '@cloudretail/auth';
import { TEST_JWT_KEYS, build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

type Running = Awaited<ReturnType<typeof start>>;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
let service: Running;
const ADMIN = { email: `${randomUUID().slice(0, 8)}-admin@example.com`, password: 'admin password 123' };

beforeAll(async () => {
  db = await createTestDatabase('users_tokens');
  service = await start(testEnv(db.url, { LOGIN_THROTTLE_KEY_PREFIX: `test:user-tokens:${randomUUID()}`, ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password }));
});
afterAll(async () => {
  await service?.stop();
  await db?.drop();
});

const api = () => request(service.url);
const signUp = async () => {
  const input = build.user();
  const res = await api().post('/auth/register').send(input);
  expect(res.status).toBe(201);
  return { input, user: res.body.user as { id: string }, token: res.body.token as string };
};
const me = (token: string) => api().get('/users/me').set('authorization', `Bearer ${token}`);
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('tokens: RS256 signed by user-service, verified with its public keys', () => {
  it('serves its public key as a JWKS with kid, and its tokens are RS256 with that kid, verifiable from the JWKS alone', async () => {
    const jwks = await api().get('/.well-known/jwks.json');
    const { token } = await signUp();

    expect(jwks.status).toBe(200);
    expect(jwks.body.keys).toEqual([expect.objectContaining({ kty: 'RSA', alg: 'RS256', use: 'sig', kid: expect.any(String), n: expect.any(String), e: 'AQAB' })]);
    expect(JSON.stringify(jwks.body)).not.toMatch(/"(d|p|q|dp|dq|qi)"/); // no private parts
    const header = jwt.decode(token, { complete: true })!.header;
    expect(header).toMatchObject({ alg: 'RS256', kid: jwks.body.keys[0].kid });
    const verifier = createAuth({ keys: remoteKeys({ url: `${service.url}/.well-known/jwks.json` }) });
    await expect(verifier.verify(token)).resolves.toMatchObject({ role: 'customer' });
  });

  it('when a token is signed HS256 (with any secret, even the public key), then 401', async () => {
    const { user } = await signUp();
    const claims = { sub: user.id, role: 'admin', iss: 'cloudretail', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 600 };
    const kid = (await api().get('/.well-known/jwks.json')).body.keys[0].kid;
    const withSecret = jwt.sign(claims, 'any-secret-0123456789abcdef-0123', { algorithm: 'HS256', keyid: kid });
    const unsigned = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64(claims)}`;
    const withPublicKey = `${unsigned}.${createHmac('sha256', TEST_JWT_KEYS.publicKey).update(unsigned).digest('base64url')}`;
    const none = `${b64({ alg: 'none', typ: 'JWT', kid })}.${b64(claims)}.`;

    const statuses = await Promise.all([withSecret, withPublicKey, none].map(async (t) => (await me(t)).status));

    expect(statuses).toEqual([401, 401, 401]);
  });
});

describe('revocation', () => {
  it('when a user logs out, then every token they had is 401 at once, and a login right after works', async () => {
    const { input, token } = await signUp();
    const second = (await api().post('/auth/login').send({ email: input.email, password: input.password })).body.token as string;
    expect((await me(token)).status).toBe(200);

    const out = await api().post('/auth/logout').set('authorization', `Bearer ${token}`);

    expect(out.status).toBe(204);
    expect((await me(token)).status).toBe(401);
    expect((await me(second)).body.error).toEqual({ code: 'unauthorized', message: 'Token revoked' });
    const again = await api().post('/auth/login').send({ email: input.email, password: input.password });
    expect(again.status).toBe(200);
    expect((await me(again.body.token)).status).toBe(200);
  });

  it("when an admin changes a user's role, then the user's old tokens are 401 and a new login carries the new role", async () => {
    const { input, user, token } = await signUp();
    const admin = (await api().post('/auth/login').send(ADMIN)).body.token as string;

    const changed = await api().put(`/users/${user.id}/role`).set('authorization', `Bearer ${admin}`).send({ role: 'admin' });

    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ id: user.id, role: 'admin' });
    expect((await me(token)).status).toBe(401);
    const fresh = await api().post('/auth/login').send({ email: input.email, password: input.password });
    expect((await me(fresh.body.token)).body.role).toBe('admin');
  });

  it('when a customer tries to change a role, or an admin their own, then 403 / 409 and nothing changes', async () => {
    const { user, token } = await signUp();
    const admin = await api().post('/auth/login').send(ADMIN);

    const byCustomer = await api().put(`/users/${user.id}/role`).set('authorization', `Bearer ${token}`).send({ role: 'admin' });
    const ownRole = await api().put(`/users/${admin.body.user.id}/role`).set('authorization', `Bearer ${admin.body.token}`).send({ role: 'customer' });

    expect([byCustomer.status, ownRole.status]).toEqual([403, 409]);
    expect((await me(token)).body.role).toBe('customer');
  });
});

describe('signing key configuration', () => {
  it('when NODE_ENV=production and JWT_PRIVATE_KEY is unset, then start-up fails naming it', async () => {
    const env = testEnv(db.url, { NODE_ENV: 'production' });
    delete env.JWT_PRIVATE_KEY;
    await expect(start(env)).rejects.toThrow(/JWT_PRIVATE_KEY: is required when NODE_ENV=production/);
  });

  it('when JWT_PRIVATE_KEY is not a PEM RSA private key, then start-up fails naming it', async () => {
    await expect(start(testEnv(db.url, { JWT_PRIVATE_KEY: TEST_JWT_KEYS.publicKey }))).rejects.toThrow(/JWT_PRIVATE_KEY: must be a PEM RSA key/);
  });

  it('when no key is set outside production, then it signs with a generated key pair that its JWKS serves', async () => {
    const env = testEnv(db.url, { LOGIN_THROTTLE_KEY_PREFIX: `test:user-tokens:${randomUUID()}` });
    delete env.JWT_PRIVATE_KEY;
    const dev = await start(env);
    try {
      const res = await request(dev.url).post('/auth/register').send(build.user());
      const jwks = await request(dev.url).get('/.well-known/jwks.json');
      expect(jwt.decode(res.body.token, { complete: true })!.header.kid).toBe(jwks.body.keys[0].kid);
      expect(jwks.body.keys[0].kid).not.toBe((await api().get('/.well-known/jwks.json')).body.keys[0].kid);
    } finally {
      await dev.stop();
    }
  });
});
