import { createHash, createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { Client } from 'pg';

/** Server used for throwaway test databases; CI and the dev machine run Postgres here. */
export const TEST_POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/**
 * The test key pair, made once per test process: testEnv gives user-service the private key and
 * every other service the public one, so tokens minted here are accepted as user-service's own.
 * (Signed here with jsonwebtoken, not @cloudretail/auth, which itself tests with this library.)
 */
export const TEST_JWT_KEYS = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
/** The RFC 7638 thumbprint, the `kid` user-service gives this key. */
const { e, kty, n } = createPublicKey(TEST_JWT_KEYS.publicKey).export({ format: 'jwk' });
export const TEST_JWT_KID = createHash('sha256').update(JSON.stringify({ e, kty, n })).digest('base64url');

/** A token for `identity` as user-service would issue it; `expiresInSeconds` may be negative (expired). */
export function signTestToken(identity: { userId: string; role: 'customer' | 'admin' }, { expiresInSeconds = 3600 }: { expiresInSeconds?: number } = {}): string {
  const iat = Math.floor(Date.now() / 1000);
  return jwt.sign({ role: identity.role, iat, exp: iat + expiresInSeconds }, TEST_JWT_KEYS.privateKey, {
    algorithm: 'RS256',
    keyid: TEST_JWT_KID,
    subject: identity.userId,
    issuer: 'cloudretail',
  });
}

/** `Bearer <token>` for `identity`. */
export const bearer = (identity: Parameters<typeof signTestToken>[0]) => `Bearer ${signTestToken(identity)}`;

async function admin<T>(fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A database of its own for one test file, so files run in parallel and in any order.
 * `drop()` removes it (terminating leftover connections).
 */
export async function createTestDatabase(prefix = 'test'): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  await admin((c) => c.query(`CREATE DATABASE "${name}"`));
  const url = new URL(TEST_POSTGRES_URL);
  url.pathname = `/${name}`;
  return {
    name,
    url: url.toString(),
    drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)).then(() => undefined),
  };
}

/**
 * Retries `assertion` until it stops throwing (or the deadline passes, then rethrows its last
 * error). For effects that happen asynchronously: events consumed, sweepers, relays.
 */
export async function eventually<T>(assertion: () => T | Promise<T>, { timeoutMs = 20_000, intervalMs = 50 } = {}): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await assertion();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

/** A unique value for fields that must be unique (emails, SKUs) so tests never collide. */
export const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Environment for starting a service in-process against the test Postgres and Redis. */
export function testEnv(databaseUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    PORT: '0',
    DATABASE_URL: databaseUrl,
    REDIS_URL: TEST_REDIS_URL,
    JWT_PRIVATE_KEY: TEST_JWT_KEYS.privateKey,
    JWT_PUBLIC_KEY: TEST_JWT_KEYS.publicKey,
    SHUTDOWN_DELAY_MS: '0',
    // Topics of its own, so a test never consumes another test's events; tests that wire several
    // services together pass one shared prefix in `overrides`.
    EVENT_TOPIC_PREFIX: `t${randomUUID().slice(0, 8)}.`,
    OUTBOX_POLL_MS: '100',
    ...overrides,
  };
}

/** Payload factories: each call gives fresh unique values; pass overrides for what the test is about. */
export const build = {
  product: (overrides: Record<string, unknown> = {}) => ({
    sku: unique('SKU').toUpperCase(),
    name: 'Trail running shoe',
    description: 'Light shoe with a grippy sole',
    category: 'footwear',
    priceCents: 8999,
    currency: 'USD',
    ...overrides,
  }),
  user: (overrides: Record<string, unknown> = {}) => ({
    email: `${unique('user')}@example.com`,
    password: 'correct horse battery',
    name: 'Ada Lovelace',
    ...overrides,
  }),
};

export { freePort, startPrivatePostgres, startPrivateRedis } from './servers';
