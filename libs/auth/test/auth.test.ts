import { createHmac, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Redis from 'ioredis';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { createApp, finishApp } from '@cloudretail/http';
import { createLogger } from '@cloudretail/logging';
import { createAuth, createIssuer, createRevocations, generateSigningKeyPair, identityOf, publicKeyOf, remoteKeys, requireRole, staticKeys } from '../src';

const pair = generateSigningKeyPair();
const issuer = createIssuer({ privateKey: pair.privateKey });
const kid = issuer.jwks().keys[0].kid;
const auth = createAuth({ keys: staticKeys([publicKeyOf(pair.publicKey)]) });
const now = () => Math.floor(Date.now() / 1000);
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

function app(a = auth) {
  const e = createApp({ logger: createLogger({ name: 'auth-test', level: 'silent' }) });
  e.get('/me', a.authenticate, (req, res) => res.json(identityOf(req)));
  e.get('/admin', a.authenticate, requireRole('admin'), (_req, res) => res.json({ ok: true }));
  return finishApp(e);
}

describe('auth', () => {
  it('when the token is valid, then the identity comes from its sub and role', async () => {
    const token = issuer.sign({ userId: 'u-1', role: 'customer' });
    const res = await request(app()).get('/me').set('authorization', `Bearer ${token}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ userId: 'u-1', role: 'customer' });
    expect(jwt.decode(token, { complete: true })!.header).toEqual({ alg: 'RS256', typ: 'JWT', kid });
  });

  const claims = { sub: 'u', role: 'admin', iss: 'cloudretail', iat: now(), exp: now() + 600 };
  const unsigned = `${b64({ alg: 'HS256', typ: 'JWT', kid })}.${b64(claims)}`;
  it.each([
    ['no header', undefined],
    ['a non-bearer scheme', 'Basic abc'],
    ['garbage', 'Bearer not.a.jwt'],
    ['another key pair', `Bearer ${createIssuer({ privateKey: generateSigningKeyPair().privateKey }).sign({ userId: 'u', role: 'admin' })}`],
    ['HS256 with a secret', `Bearer ${jwt.sign(claims, 'another-secret-of-32-characters!', { algorithm: 'HS256', keyid: kid })}`],
    ['HS256 with the public key as secret', `Bearer ${unsigned}.${createHmac('sha256', pair.publicKey).update(unsigned).digest('base64url')}`],
    ['alg none', `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims)}.`],
    ['an expired token', `Bearer ${jwt.sign({ ...claims, exp: now() - 10 }, pair.privateKey, { algorithm: 'RS256', keyid: kid })}`],
    ['an unknown role', `Bearer ${jwt.sign({ ...claims, role: 'root' }, pair.privateKey, { algorithm: 'RS256', keyid: kid })}`],
  ])('when the request has %s, then 401 in the envelope', async (_name, header) => {
    const req = request(app()).get('/me');
    if (header) req.set('authorization', header);
    const res = await req;
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
  });

  it('when a customer calls an admin route, then 403; an admin gets through', async () => {
    const customer = await request(app()).get('/admin').set('authorization', `Bearer ${issuer.sign({ userId: 'c', role: 'customer' })}`);
    expect(customer.status).toBe(403);
    const admin = await request(app()).get('/admin').set('authorization', `Bearer ${issuer.sign({ userId: 'a', role: 'admin' })}`);
    expect(admin.status).toBe(200);
  });
});

describe('remote keys (JWKS_URL)', () => {
  it('fetches the JWKS on an unknown kid, at most once per interval however many forged kids arrive', async () => {
    let fetches = 0;
    let served = issuer;
    const server = http.createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(served.jwks()));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
      const verifier = createAuth({ keys: remoteKeys({ url, minIntervalMs: 60_000 }) });

      await expect(verifier.verify(issuer.sign({ userId: 'u', role: 'customer' }))).resolves.toEqual({ userId: 'u', role: 'customer' });
      expect(verifier.verifySignature(issuer.sign({ userId: 'u', role: 'customer' }))).toEqual({ userId: 'u', role: 'customer' });
      const forged = (k: string) => jwt.sign({ role: 'admin' }, generateSigningKeyPair().privateKey, { algorithm: 'RS256', keyid: k, subject: 'u', issuer: 'cloudretail' });
      for (let i = 0; i < 3; i++) await expect(verifier.verify(forged(`kid-${i}`))).rejects.toThrow(/Invalid token/);
      expect(fetches).toBe(1);

      // A rotated issuer: its new kid is fetched once the interval allows.
      served = createIssuer({ privateKey: generateSigningKeyPair().privateKey });
      const rotated = createAuth({ keys: remoteKeys({ url, minIntervalMs: 0 }) });
      await expect(rotated.verify(served.sign({ userId: 'v', role: 'admin' }))).resolves.toEqual({ userId: 'v', role: 'admin' });
    } finally {
      server.close();
    }
  });
});

describe('revocations', () => {
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
  afterAll(() => redis.quit());

  it('when a user is revoked, then tokens issued before are 401 (after the cache time elsewhere) and tokens issued after work', async () => {
    const prefix = `test:auth-revoked:${randomUUID()}:`;
    const issuing = createRevocations(redis, { prefix, cacheMs: 0 });
    const elsewhere = createAuth({ keys: issuer.keys, revocations: createRevocations(redis, { prefix, cacheMs: 300 }) });
    const before = issuer.sign({ userId: 'u-r', role: 'customer' });
    await expect(elsewhere.verify(before)).resolves.toMatchObject({ userId: 'u-r' });

    const notBefore = await issuing.revoke('u-r', 3600);
    const after = issuer.sign({ userId: 'u-r', role: 'customer' }, { notBefore });

    await expect(elsewhere.verify(before)).resolves.toMatchObject({ userId: 'u-r' }); // still cached
    await new Promise((r) => setTimeout(r, 350));
    await expect(elsewhere.verify(before)).rejects.toThrow(/Token revoked/);
    await expect(elsewhere.verify(after)).resolves.toMatchObject({ userId: 'u-r' });
    expect(await redis.ttl(`${prefix}u-r`)).toBeGreaterThan(3500);
  });
});
