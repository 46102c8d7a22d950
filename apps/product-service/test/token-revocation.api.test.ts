import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import request from 'supertest';
import { createIssuer, createRevocations, generateSigningKeyPair } from '@cloudretail/auth';
import { TEST_REDIS_URL, build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

// user-service's side, played here: its JWKS over HTTP and its revocation writes to the shared Redis.
const issuer = createIssuer({ privateKey: generateSigningKeyPair().privateKey });
const prefix = `test:not-before:${randomUUID()}:`;

describe('tokens in product-service: keys from JWKS_URL, revocation within JWT_REVOCATION_CACHE_MS', () => {
  it('when a user is revoked (logout, role change), then their token is 401 here within the cache time', async () => {
    const jwks = http.createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(issuer.jwks())));
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
    const redis = new Redis(TEST_REDIS_URL);
    const db = await createTestDatabase('product_tokens');
    const env = testEnv(db.url, { JWKS_URL: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`, JWT_REVOCATION_KEY_PREFIX: prefix, JWT_REVOCATION_CACHE_MS: '500' });
    delete env.JWT_PUBLIC_KEY;
    const service = await start(env);
    try {
      const adminId = randomUUID();
      const token = `Bearer ${issuer.sign({ userId: adminId, role: 'admin' })}`;
      expect((await request(service.url).post('/products').set('authorization', token).send(build.product())).status).toBe(201);

      const revokedAt = Date.now();
      await createRevocations(redis, { prefix, cacheMs: 0 }).revoke(adminId, 3600);

      let status = 201;
      while (status !== 401 && Date.now() - revokedAt < 2_000) {
        const res = await request(service.url).post('/products').set('authorization', token).send(build.product());
        status = res.status;
        if (status === 401) expect(res.body.error).toEqual({ code: 'unauthorized', message: 'Token revoked' });
        else await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe(401);
      expect(Date.now() - revokedAt).toBeLessThan(500 + 300); // the cache time, plus one request's slack
    } finally {
      await service.stop();
      await db.drop();
      await redis.quit();
      jwks.close();
    }
  });
});
