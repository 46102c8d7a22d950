import { randomUUID } from 'node:crypto';
import path from 'node:path';
import Redis from 'ioredis';
import request from 'supertest';
import { QueryTypes, type Sequelize } from '@cloudretail/db';
import type { Transport } from '@cloudretail/events';
import { signTestToken, TEST_REDIS_URL, build, createTestDatabase, testEnv, eventually } from '@cloudretail/testing';
import { start as startOrders } from '../../src/main';

const auth = { sign: signTestToken };
export const tokenOf = (userId: string, role: 'customer' | 'admin' = 'customer') => `Bearer ${auth.sign({ userId, role })}`;
export const adminToken = tokenOf('00000000-0000-4000-8000-00000000000a', 'admin');

/** A fresh customer: its id and bearer token. */
export function newCustomer() {
  const id = randomUUID();
  return { id, token: tokenOf(id) };
}
export type Customer = ReturnType<typeof newCustomer>;

/** A running service as `startService` returns it (what the tests use of it). */
export interface Running {
  url: string;
  stop: () => Promise<void>;
  ctx: { sequelize: Sequelize; transport: Transport };
}

type AppName = 'product-service' | 'inventory-service' | 'payment-service';

/**
 * Another service, started in-process on its own database. It is loaded through a runtime path,
 * not an import, because one service never imports another's code (module boundaries): here it is
 * a running neighbour reached over HTTP and the event backbone, as in production.
 */
async function startNeighbour(app: AppName, env: Record<string, string>): Promise<Running> {
  const { start } = (await import(path.join(__dirname, `../../../${app}/src/main`))) as { start: (env: NodeJS.ProcessEnv) => Promise<Running> };
  return start(env);
}

/** A unique topic namespace (EVENT_TOPIC_PREFIX): this test file never sees another file's events. */
export const newTopicPrefix = () => `t${randomUUID().slice(0, 8)}.`;

/** Settings that make the saga quick in tests: short outbox polls and retry backoff. */
export const fastEvents = (prefix: string) => ({ EVENT_TOPIC_PREFIX: prefix, OUTBOX_POLL_MS: '50', EVENT_RETRY_BACKOFF_MS: '50' });

export interface ServiceHandle {
  service: Running;
  databaseUrl: string;
  /** Starts the service again on the same database (after `stop`). */
  restart: () => Promise<Running>;
}

export interface SystemOptions {
  /** Services not to start (all start by default; a test may run order-service as a child process). */
  without?: (AppName | 'order-service')[];
  /** Extra environment per service ('order-service' included). */
  env?: Partial<Record<AppName | 'order-service', Record<string, string>>>;
}

/**
 * The checkout system: product-, inventory-, payment- and order-service, each on its own test
 * database and all on one private topic namespace of the real Redis Streams transport.
 */
export async function startSystem({ without = [], env = {} }: SystemOptions = {}) {
  const prefix = newTopicPrefix();
  const drops: (() => Promise<void>)[] = [];
  const handles = new Map<string, ServiceHandle>();

  async function launch(name: AppName | 'order-service', extra: Record<string, string>) {
    const db = await createTestDatabase(name.split('-')[0]);
    drops.push(db.drop);
    const serviceEnv = testEnv(db.url, { ...fastEvents(prefix), ...extra, ...(env[name] ?? {}) });
    const boot = () => (name === 'order-service' ? (startOrders(serviceEnv) as unknown as Promise<Running>) : startNeighbour(name, serviceEnv));
    const handle: ServiceHandle = {
      service: await boot(),
      databaseUrl: db.url,
      restart: async () => (handle.service = await boot()),
    };
    handles.set(name, handle);
    return handle;
  }

  const products = await launch('product-service', {});
  const productUrl = { PRODUCT_SERVICE_URL: products.service.url };
  const inventory = without.includes('inventory-service') ? undefined : await launch('inventory-service', productUrl);
  const payments = without.includes('payment-service') ? undefined : await launch('payment-service', {});
  const orders = without.includes('order-service') ? undefined : await launch('order-service', productUrl);

  const system = {
    prefix,
    /** What order-service needs to join this system (for a child process). */
    orderServiceEnv: (databaseUrl: string) => testEnv(databaseUrl, { ...fastEvents(prefix), ...productUrl, ...(env['order-service'] ?? {}) }),
    products,
    inventory,
    payments,
    orders,
    /** Starts a service left out by `without` (e.g. payment-service once orders wait on their payment step). */
    async startLater(name: 'inventory-service' | 'payment-service'): Promise<ServiceHandle> {
      const handle = await launch(name, name === 'inventory-service' ? productUrl : {});
      system[name === 'inventory-service' ? 'inventory' : 'payments'] = handle;
      return handle;
    },
    /** Creates a product through the catalog's admin API and, unless null, stocks it through inventory's. */
    async stockedProduct({ priceCents = 2500, available = 10 }: { priceCents?: number; available?: number | null } = {}): Promise<string> {
      const created = await request(products.service.url).post('/products').set('authorization', adminToken).send(build.product({ priceCents }));
      if (created.status !== 201) throw new Error(`creating a product failed: ${created.status} ${JSON.stringify(created.body)}`);
      if (available !== null) {
        if (!inventory) throw new Error('inventory-service is not running');
        const stocked = await request(inventory.service.url).put(`/inventory/${created.body.id}`).set('authorization', adminToken).send({ available });
        if (stocked.status !== 200) throw new Error(`stocking failed: ${stocked.status} ${JSON.stringify(stocked.body)}`);
      }
      return created.body.id as string;
    },
    async stop() {
      for (const name of ['order-service', 'payment-service', 'inventory-service', 'product-service']) {
        await handles.get(name)?.service.stop().catch(() => undefined); // a test may have stopped it already
      }
      for (const drop of drops) await drop();
      await deleteStreams(prefix);
    },
  };
  return system;
}

export type System = Awaited<ReturnType<typeof startSystem>>;

/** Removes this run's streams, dead-letter streams included, from the shared Redis (only keys under its own prefix). */
export async function deleteStreams(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const keys: string[] = [];
    for (const pattern of [`events:${prefix}*`, `events:dlq.${prefix}*`]) {
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        keys.push(...found);
        cursor = next;
      } while (cursor !== '0');
    }
    if (keys.length) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}

export interface OrderRequest {
  items: { productId: string; quantity: number }[];
  token?: string;
  key?: string | null;
}

/** POST /orders as `customer`; a fresh Idempotency-Key unless one is given (null: none). */
export function placeOrder(ordersUrl: string, customer: Customer, { items, token = 'tok_visa', key = randomUUID() }: OrderRequest) {
  const req = request(ordersUrl).post('/orders').set('authorization', customer.token);
  if (key !== null) req.set('idempotency-key', key);
  return req.send({ items, paymentMethod: { type: 'card', token } });
}

export { eventually };

/** Waits until the order leaves PENDING and returns it as its owner sees it. */
export async function finalOrder(ordersUrl: string, customer: Customer, orderId: string, timeoutMs = 20_000) {
  return eventually(
    async () => {
      const res = await request(ordersUrl).get(`/orders/${orderId}`).set('authorization', customer.token);
      expect(res.status).toBe(200);
      expect(res.body.status).not.toBe('PENDING');
      return res.body as { id: string; status: string; reason?: string; totalCents: number; items: unknown[] };
    },
    { timeoutMs },
  );
}

export async function stockOf(inventoryUrl: string, productId: string): Promise<{ available: number; reserved: number }> {
  const { available, reserved } = (await request(inventoryUrl).get(`/inventory/${productId}`)).body;
  return { available, reserved };
}

/** Rows of a SQL query against one service's database. */
export const rows = <T extends object>(sequelize: Sequelize, sql: string, bind: unknown[] = []) => sequelize.query<T>(sql, { bind, type: QueryTypes.SELECT });
