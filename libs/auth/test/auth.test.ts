import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import request from 'supertest';
import { createApp, finishApp } from '@cloudretail/http';
import { createLogger } from '@cloudretail/logging';
import { createAuth, identityOf, requireRole } from '../src';

const secret = 'a-test-secret-of-32-characters!!';
const auth = createAuth({ secret });

function app() {
  const a = createApp({ logger: createLogger({ name: 'auth-test', level: 'silent' }) });
  a.get('/me', auth.authenticate, (req, res) => res.json(identityOf(req)));
  a.get('/admin', auth.authenticate, requireRole('admin'), (_req, res) => res.json({ ok: true }));
  return finishApp(a);
}

describe('auth', () => {
  it('when the token is valid, then the identity comes from its sub and role', async () => {
    const token = auth.sign({ userId: 'u-1', role: 'customer' });
    const res = await request(app()).get('/me').set('authorization', `Bearer ${token}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ userId: 'u-1', role: 'customer' });
  });

  it.each([
    ['no header', undefined],
    ['a non-bearer scheme', 'Basic abc'],
    ['garbage', 'Bearer not.a.jwt'],
    ['a wrong signature', `Bearer ${jwt.sign({ role: 'admin' }, 'another-secret-of-32-characters!', { subject: 'u', issuer: 'cloudretail' })}`],
    ['alg none', `Bearer ${jwt.sign({ role: 'admin' }, '', { algorithm: 'none', subject: 'u', issuer: 'cloudretail' })}`],
    ['an expired token', `Bearer ${jwt.sign({ role: 'admin', exp: Math.floor(Date.now() / 1000) - 10 }, secret, { subject: 'u', issuer: 'cloudretail' })}`],
    ['an unknown role', `Bearer ${jwt.sign({ role: 'root' }, secret, { subject: 'u', issuer: 'cloudretail' })}`],
  ])('when the request has %s, then 401 in the envelope', async (_name, header) => {
    const req = request(app()).get('/me');
    if (header) req.set('authorization', header);
    const res = await req;
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('unauthorized');
  });

  it('when a customer calls an admin route, then 403; an admin gets through', async () => {
    const customer = await request(app()).get('/admin').set('authorization', `Bearer ${auth.sign({ userId: 'c', role: 'customer' })}`);
    expect(customer.status).toBe(403);
    const admin = await request(app()).get('/admin').set('authorization', `Bearer ${auth.sign({ userId: 'a', role: 'admin' })}`);
    expect(admin.status).toBe(200);
  });

  it('supports RS256, and an HS256 token signed with the public key (algorithm swap) is rejected', () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    const issuer = createAuth({ algorithm: 'RS256', privateKey, publicKey });
    const verifier = createAuth({ algorithm: 'RS256', publicKey });
    expect(verifier.verify(issuer.sign({ userId: 'u', role: 'admin' }))).toEqual({ userId: 'u', role: 'admin' });
    expect(() => verifier.sign({ userId: 'u', role: 'admin' })).toThrow(/JWT_PRIVATE_KEY/);
    const swapped = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
    const body = Buffer.from(JSON.stringify({ sub: 'u', role: 'admin', iss: 'cloudretail' })).toString('base64url');
    const { createHmac } = jest.requireActual('node:crypto') as typeof import('node:crypto');
    const sig = createHmac('sha256', publicKey).update(`${swapped}.${body}`).digest('base64url');
    expect(() => verifier.verify(`${swapped}.${body}.${sig}`)).toThrow(/Invalid token/);
  });
});
