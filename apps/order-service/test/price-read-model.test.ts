import { randomUUID } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Redis from 'ioredis';
import { type Db, type Sequelize, createSequelize, dbOf, migrate } from '@cloudretail/db';
import { type EventEnvelope, type Transport, createEvent, createTransport } from '@cloudretail/events';
import { createLogger } from '@cloudretail/logging';
import type { Closer } from '@cloudretail/shutdown';
import { TEST_REDIS_URL, createTestDatabase, eventually } from '@cloudretail/testing';
import { migrations } from '../src/data-access/migrations';
import { priceRepository } from '../src/data-access/price-repository';
import { type ProductCatalog, productCatalog } from '../src/data-access/product-catalog';
import { CATALOG_CONSUMER_GROUP, startCatalogConsumer } from '../src/entry-points/messaging/catalog-consumer';

/**
 * The price read model on its own: the catalog consumer on the real Redis transport (a topic
 * namespace of this file's), the read model in a test database, and in place of product-service
 * a server that answers from `catalogAnswers` and counts the calls it gets.
 */
const prefix = `t${randomUUID().slice(0, 8)}.`;
const catalogAnswers = new Map<string, object>();
const calls = new Map<string, number>();
const callsFor = (productId: string) => calls.get(productId) ?? 0;

let drop: () => Promise<void>;
let sequelize: Sequelize;
let db: Db;
let transport: Transport;
let consumer: Closer;
let productService: Server;
let catalog: ProductCatalog;

beforeAll(async () => {
  const database = await createTestDatabase('orders_prices');
  drop = database.drop;
  sequelize = createSequelize(database.url);
  await migrate(sequelize, migrations, 'up');
  db = dbOf(sequelize);
  const logger = createLogger({ name: 'price-read-model-test', level: (process.env.TEST_LOG_LEVEL ?? 'silent') as 'silent' });
  transport = createTransport({ EVENT_TRANSPORT: 'redis', REDIS_URL: TEST_REDIS_URL, EVENT_TOPIC_PREFIX: prefix, EVENT_RETRY_BACKOFF_MS: 50 }, logger);
  productService = createServer((req, res) => {
    const id = decodeURIComponent(req.url!.replace(/^\/products\//, ''));
    calls.set(id, callsFor(id) + 1);
    const answer = catalogAnswers.get(id);
    res.writeHead(answer ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(answer ?? { error: { code: 'not_found' } }));
  });
  await new Promise<void>((resolve) => productService.listen(0, '127.0.0.1', resolve));
  const prices = priceRepository(db);
  catalog = productCatalog({ baseUrl: `http://127.0.0.1:${(productService.address() as AddressInfo).port}`, timeoutMs: 2000, prices });
  consumer = await startCatalogConsumer({ transport, db, prices });
});

afterAll(async () => {
  await consumer?.close();
  await transport?.close();
  await new Promise((resolve) => productService?.close(resolve));
  await sequelize?.close();
  await drop?.();
  const redis = new Redis(TEST_REDIS_URL);
  const keys = [...(await redis.keys(`events:${prefix}*`)), ...(await redis.keys(`events:dlq.${prefix}*`))];
  if (keys.length) await redis.del(...keys);
  redis.disconnect();
});

const snapshot = (productId: string, priceCents: number, overrides: { active?: boolean } = {}) => ({
  productId,
  sku: `SKU-${productId.slice(0, 8)}`,
  name: 'Trail running shoe',
  category: 'footwear',
  priceCents,
  currency: 'USD',
  active: true,
  ...overrides,
});

/** An event as product-service would publish it, `at` its occurredAt (default: now). */
function catalogEvent<T extends 'ProductCreated' | 'ProductUpdated' | 'ProductDeleted'>(type: T, payload: Parameters<typeof createEvent<T>>[2], at?: Date) {
  const event = createEvent(type, payload.productId, payload);
  return at ? { ...event, occurredAt: at.toISOString() } : event;
}

/** Publishes the events and waits until the catalog consumer has handled them (its inbox rows). */
async function deliver(...events: EventEnvelope[]) {
  await transport.publish('catalog', events);
  await eventually(async () => {
    const [{ handled }] = await db.query<{ handled: string }>('SELECT count(*) AS handled FROM inbox WHERE consumer_group = $1 AND event_id = ANY($2::uuid[])', [CATALOG_CONSUMER_GROUP, events.map((e) => e.id)]);
    expect(Number(handled)).toBe(events.length);
  });
}

const secondsAgo = (s: number) => new Date(Date.now() - s * 1000);

describe('order prices from the local read model', () => {
  test('when ProductCreated has arrived, then the product is priced locally without calling product-service', async () => {
    const id = randomUUID();

    await deliver(catalogEvent('ProductCreated', snapshot(id, 1999)));

    expect(await catalog.find(id)).toEqual({ id, priceCents: 1999, currency: 'USD', active: true });
    expect(callsFor(id)).toBe(0);
  });

  test('when ProductUpdated has arrived, then orders get the new price', async () => {
    const id = randomUUID();
    await deliver(catalogEvent('ProductCreated', snapshot(id, 1000), secondsAgo(2)));

    await deliver(catalogEvent('ProductUpdated', snapshot(id, 1500)));

    expect(await catalog.find(id)).toMatchObject({ priceCents: 1500 });
    expect(callsFor(id)).toBe(0);
  });

  test('when an older event arrives after a newer one, then it changes nothing', async () => {
    const id = randomUUID();
    await deliver(catalogEvent('ProductCreated', snapshot(id, 1000), secondsAgo(3)), catalogEvent('ProductUpdated', snapshot(id, 1500), secondsAgo(1)));

    await deliver(catalogEvent('ProductUpdated', snapshot(id, 1200), secondsAgo(2)));

    expect(await catalog.find(id)).toMatchObject({ priceCents: 1500 });
  });

  test('when ProductDeleted has arrived, then the product is not found, locally, and an older event does not bring it back', async () => {
    const id = randomUUID();
    catalogAnswers.set(id, { id, priceCents: 1000, currency: 'USD', active: true }); // a fallback would find it
    await deliver(catalogEvent('ProductCreated', snapshot(id, 1000), secondsAgo(3)));

    await deliver(catalogEvent('ProductDeleted', { productId: id }, secondsAgo(1)));
    expect(await catalog.find(id)).toBeNull();

    await deliver(catalogEvent('ProductUpdated', snapshot(id, 1200), secondsAgo(2)));
    expect(await catalog.find(id)).toBeNull();
    expect(callsFor(id)).toBe(0);
  });

  test('when ProductUpdated deactivates a product, then it is not found', async () => {
    const id = randomUUID();
    await deliver(catalogEvent('ProductCreated', snapshot(id, 1000), secondsAgo(1)));

    await deliver(catalogEvent('ProductUpdated', snapshot(id, 1000, { active: false })));

    expect(await catalog.find(id)).toBeNull();
    expect(callsFor(id)).toBe(0);
  });

  test('when a product is not known here, then product-service is asked once and the next order is priced locally', async () => {
    const id = randomUUID();
    catalogAnswers.set(id, { id, priceCents: 4200, currency: 'EUR', active: true });

    expect(await catalog.find(id)).toEqual({ id, priceCents: 4200, currency: 'EUR', active: true });
    expect(await catalog.find(id)).toEqual({ id, priceCents: 4200, currency: 'EUR', active: true });
    expect(callsFor(id)).toBe(1);
  });

  test('when an event arrives for a product read from product-service, then the event wins, even an older one', async () => {
    const id = randomUUID();
    catalogAnswers.set(id, { id, priceCents: 4200, currency: 'EUR', active: true });
    await catalog.find(id);

    await deliver(catalogEvent('ProductUpdated', snapshot(id, 4500), secondsAgo(60)));

    expect(await catalog.find(id)).toMatchObject({ priceCents: 4500, currency: 'USD' });
    expect(callsFor(id)).toBe(1);
  });

  test('when product-service does not know a product either, then it is not found, and asked again next time', async () => {
    const id = randomUUID();

    expect(await catalog.find(id)).toBeNull();
    expect(await catalog.find(id)).toBeNull();
    expect(callsFor(id)).toBe(2);
  });

  test('when product-service is down on a miss, then the answer is 503 (never a guess) and nothing is kept', async () => {
    const id = randomUUID();
    const down = productCatalog({ baseUrl: 'http://127.0.0.1:1', timeoutMs: 500, prices: priceRepository(db) });

    await expect(down.find(id)).rejects.toMatchObject({ status: 503 });
    catalogAnswers.set(id, { id, priceCents: 700, currency: 'USD', active: true });
    expect(await catalog.find(id)).toMatchObject({ priceCents: 700 });
  });

  test('findMany answers in the order asked, asking product-service only about products unknown here', async () => {
    const [local, gone, fetched, unknown] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    catalogAnswers.set(fetched, { id: fetched, priceCents: 300, currency: 'USD', active: true });
    await deliver(catalogEvent('ProductCreated', snapshot(local, 100)), catalogEvent('ProductDeleted', { productId: gone }));

    const found = await catalog.findMany([unknown, fetched, gone, local]);

    expect(found).toEqual([null, { id: fetched, priceCents: 300, currency: 'USD', active: true }, null, { id: local, priceCents: 100, currency: 'USD', active: true }]);
    expect([local, gone, fetched, unknown].map(callsFor)).toEqual([0, 0, 1, 1]);
  });
});
