import { createAuth, publicKeyOf, remoteKeys, staticKeys } from '@cloudretail/auth';
import { ConfigError, loadConfig } from '@cloudretail/config';
import { TEST_JWT_KEYS, TEST_JWT_KID, eventually, signTestToken } from '@cloudretail/testing';
import { configSchema, rateRuleFor, timeoutFor } from '../src/config';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clientIp } from '../src/edge/edge';
import { createTokenVerifier } from '../src/edge/token-verifier';
import { CircuitBreaker } from '../src/proxy/circuit-breaker';
import { resolveRoute } from '../src/routes';

describe('CircuitBreaker', () => {
  let now = 0;
  const breaker = () => new CircuitBreaker({ failureThreshold: 3, openMs: 1000, now: () => now });
  beforeEach(() => (now = 0));

  it('when failures are not consecutive, then it stays closed', () => {
    const b = breaker();
    b.onFailure('call');
    b.onFailure('call');
    b.onSuccess('call');
    b.onFailure('call');
    expect(b.current).toBe('closed');
    expect(b.acquire()).toBe('call');
  });

  it('when N consecutive failures happen, then it refuses calls until openMs has passed, then lets exactly one probe through', () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.onFailure('call');
    expect(b.current).toBe('open');
    expect(b.acquire()).toBeUndefined();
    now = 1000;
    expect(b.acquire()).toBe('probe');
    expect(b.acquire()).toBeUndefined(); // one probe at a time
    b.onFailure('probe');
    expect(b.current).toBe('open');
    now = 2000;
    const probe = b.acquire();
    b.onSuccess(probe);
    expect(b.current).toBe('closed');
  });

  it('when the probe ends without a verdict (client left), then the next request may probe', () => {
    const b = breaker();
    for (let i = 0; i < 3; i++) b.onFailure('call');
    now = 1000;
    b.release(b.acquire());
    expect(b.acquire()).toBe('probe');
  });
});

describe('token verifier', () => {
  const auth = createAuth({ keys: staticKeys([publicKeyOf(TEST_JWT_KEYS.publicKey)]) });

  it('when the same token comes again, then it is served from the cache; the cache never grows past its bound', () => {
    const verifier = createTokenVerifier({ auth, maxEntries: 2, maxAgeMs: 60_000 });
    const [a, b, c] = ['a', 'b', 'c'].map((id) => signTestToken({ userId: id, role: 'customer' }));
    expect(verifier.verify(a)).toEqual({ identity: { userId: 'a', role: 'customer' } });
    verifier.verify(a);
    verifier.verify(b);
    verifier.verify(a); // a is now the most recently used
    verifier.verify(c); // evicts b, the least recently used
    expect(verifier.stats()).toEqual({ size: 2, hits: 2, misses: 3 });
    verifier.verify(a);
    verifier.verify(b);
    expect(verifier.stats()).toMatchObject({ hits: 3, misses: 4 });
  });

  it('with JWKS_URL: a kid not yet fetched is 401 without waiting, and the fetch it starts lets the token through next time', async () => {
    let fetches = 0;
    const jwksServer = http.createServer((_req, res) => {
      fetches++;
      const { kid: _kid, ...jwk } = publicKeyOf(TEST_JWT_KEYS.publicKey).export({ format: 'jwk' }) as Record<string, string>;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [{ ...jwk, kid: TEST_JWT_KID, alg: 'RS256', use: 'sig' }] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`;
      const verifier = createTokenVerifier({ auth: createAuth({ keys: remoteKeys({ url, minIntervalMs: 0 }) }), maxEntries: 10, maxAgeMs: 60_000 });
      const token = signTestToken({ userId: 'k', role: 'customer' });

      expect(verifier.verify(token)).toMatchObject({ error: { code: 'unauthorized' } });
      await eventually(() => expect(verifier.verify(token)).toEqual({ identity: { userId: 'k', role: 'customer' } }), { timeoutMs: 3000 });
      expect(fetches).toBe(1);
    } finally {
      jwksServer.close();
    }
  });

  it('when a cached entry is older than maxAgeMs, then the token is verified again', () => {
    let now = 0;
    const verifier = createTokenVerifier({ auth, maxEntries: 10, maxAgeMs: 1000, now: () => now });
    const token = signTestToken({ userId: 'a', role: 'admin' });
    verifier.verify(token);
    now = 1001;
    verifier.verify(token);
    expect(verifier.stats().misses).toBe(2);
  });

  it('when the token is invalid, then an unauthorized error is returned, not thrown', () => {
    const verifier = createTokenVerifier({ auth, maxEntries: 10, maxAgeMs: 1000 });
    const result = verifier.verify('not-a-token');
    expect('error' in result && result.error.code).toBe('unauthorized');
  });
});

describe('route table', () => {
  it.each([
    ['POST', '/auth/login', 'auth', true],
    ['POST', '/auth/register/', 'auth', true],
    ['POST', '/auth/logout', 'auth', false],
    ['GET', '/products', 'products', true],
    ['DELETE', '/products/1', 'products', false],
    ['GET', '/inventory/p1', 'inventory', true],
    ['GET', '/inventory', 'inventory', false],
    ['GET', '/orders/1/events', 'events', false],
    ['GET', '/orders/1', 'orders', false],
  ])('%s %s is %s, public=%s', (method, path, group, isPublic) => {
    expect(resolveRoute(method, path)).toMatchObject({ group, public: isPublic });
  });

  it('an unknown first segment matches nothing', () => {
    expect(resolveRoute('GET', '/productsx/1')).toBeUndefined();
  });
});

describe('client IP (the rate limit bucket of anonymous callers)', () => {
  const req = (forwardedFor?: string) => ({ headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}, socket: { remoteAddress: '10.0.0.9' } }) as unknown as IncomingMessage;

  it('when proxies are not trusted, then X-Forwarded-For is ignored (a client cannot pick its bucket)', () => {
    expect(clientIp(req('1.2.3.4'), false)).toBe('10.0.0.9');
  });

  it('when the load balancer is trusted, then the client is the address it saw (the right-most entry); entries the client wrote are ignored', () => {
    expect(clientIp(req('198.51.100.7'), true)).toBe('198.51.100.7');
    // a client sends "X-Forwarded-For: 1.2.3.4"; the load balancer appends what it saw
    expect(clientIp(req(' 1.2.3.4 , 198.51.100.7'), true)).toBe('198.51.100.7');
    expect(clientIp(req(), true)).toBe('10.0.0.9');
  });
});

describe('config', () => {
  const base = { JWT_PUBLIC_KEY: TEST_JWT_KEYS.publicKey };

  it('reads per-group rate limits and timeouts, falling back to the defaults', () => {
    const config = loadConfig(configSchema, { ...base, RATE_LIMIT_DEFAULT: '100/1m', RATE_LIMIT_ORDERS: '5/500ms', TIMEOUT_PAYMENTS_MS: '15000' });
    expect(rateRuleFor(config, 'orders')).toEqual({ limit: 5, windowMs: 500 });
    expect(rateRuleFor(config, 'products')).toEqual({ limit: 100, windowMs: 60_000 });
    expect(rateRuleFor(config, 'auth')).toEqual({ limit: 20, windowMs: 60_000 });
    expect(timeoutFor(config, 'payments')).toBe(15_000);
    expect(timeoutFor(config, 'orders')).toBe(10_000);
  });

  it('when a rate limit or the public key is malformed, then start-up fails naming each variable', () => {
    const error = (() => {
      try {
        loadConfig(configSchema, { RATE_LIMIT_AUTH: 'lots', JWT_PUBLIC_KEY: 'a-secret-is-not-a-public-key' });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.issues.map((i) => i.variable).sort()).toEqual(['JWT_PUBLIC_KEY', 'RATE_LIMIT_AUTH']);
  });
});
