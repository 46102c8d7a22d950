import { randomUUID } from 'node:crypto';
import path from 'node:path';
import Redis from 'ioredis';
import { TEST_REDIS_URL, createTestDatabase, testEnv } from '@cloudretail/testing';

interface Running {
  url: string;
  stop: () => Promise<void>;
}
type Start = (env: NodeJS.ProcessEnv) => Promise<Running>;

/**
 * An app's `start`. Loaded through a runtime path, not an import: tools depend on libs only
 * (module boundaries), and here every app is a running neighbour reached over HTTP.
 */
const startOf = async (app: string): Promise<Start> => ((await import(path.join(__dirname, `../../../apps/${app}/src/main`))) as { start: Start }).start;

export const ADMIN = { email: 'admin@client.test', password: 'client-test-password' };

/**
 * The whole platform in-process, as `npm start` wires it: six services on databases of their own,
 * one private event-topic namespace and Redis prefix, and the gateway in front. Returns the
 * gateway's URL and `stop()`.
 */
export async function startPlatform() {
  const id = randomUUID().slice(0, 8);
  const shared = { EVENT_TOPIC_PREFIX: `t${id}.`, OUTBOX_POLL_MS: '50', EVENT_RETRY_BACKOFF_MS: '50', REDIS_KEY_PREFIX: `client${id}:` };
  const running: Running[] = [];
  const drops: (() => Promise<void>)[] = [];
  const boot = async (app: string, extra: Record<string, string> = {}) => {
    const db = await createTestDatabase(`client_${app.split('-')[0]}`);
    drops.push(db.drop);
    const service = await (await startOf(app))(testEnv(db.url, { ...shared, ...extra }));
    running.push(service);
    return service.url;
  };
  const product = await boot('product-service');
  const urls = {
    USER_SERVICE_URL: await boot('user-service', { ADMIN_EMAIL: ADMIN.email, ADMIN_PASSWORD: ADMIN.password, LOGIN_THROTTLE_KEY_PREFIX: `client${id}:login` }),
    PRODUCT_SERVICE_URL: product,
    INVENTORY_SERVICE_URL: await boot('inventory-service', { PRODUCT_SERVICE_URL: product }),
    ORDER_SERVICE_URL: await boot('order-service', { PRODUCT_SERVICE_URL: product }),
    PAYMENT_SERVICE_URL: await boot('payment-service'),
    EVENT_BUS_URL: await boot('event-bus'),
  };
  // The services' test environment (token keys included), without a database: the gateway has none.
  const { DATABASE_URL: _none, ...gatewayEnv } = testEnv('postgres://unused', shared);
  const gateway = await (await startOf('api-gateway'))({ ...gatewayEnv, RATE_LIMIT_KEY_PREFIX: `client${id}:ratelimit`, ...urls });
  running.unshift(gateway);
  return {
    url: gateway.url,
    async stop() {
      for (const service of running) await service.stop().catch(() => undefined);
      for (const drop of drops) await drop();
      await deleteKeys([`events:t${id}.*`, `events:dlq.t${id}.*`, `client${id}:*`]);
    },
  };
}

/** Removes this platform's streams and keys from the shared Redis (only its own prefixes). */
async function deleteKeys(patterns: string[]): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    for (const pattern of patterns) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        if (keys.length) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    }
  } finally {
    redis.disconnect();
  }
}
