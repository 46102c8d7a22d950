import { randomUUID } from 'node:crypto';
import path from 'node:path';
import request from 'supertest';
import { signTestToken, build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

const auth = { sign: signTestToken };
export const adminToken = `Bearer ${auth.sign({ userId: '00000000-0000-4000-8000-000000000001', role: 'admin' })}`;
export const customerToken = `Bearer ${auth.sign({ userId: '00000000-0000-4000-8000-000000000002', role: 'customer' })}`;

interface Running {
  url: string;
  stop: () => Promise<void>;
}

/**
 * The real product-service, started in-process on its own test database. It is loaded through a
 * runtime path, not an import, because one service never imports another's code (module
 * boundaries); here it is only a running neighbour, reached over HTTP like in production.
 */
export async function startProductService() {
  const db = await createTestDatabase('inv_products');
  const { start: startProducts } = (await import(path.join(__dirname, '../../product-service/src/main'))) as { start: (env: NodeJS.ProcessEnv) => Promise<Running> };
  const service = await startProducts(testEnv(db.url));
  return {
    url: service.url,
    /** Creates a product through the catalog's admin API and returns its id. */
    async createProduct(): Promise<string> {
      const res = await request(service.url).post('/products').set('authorization', adminToken).send(build.product());
      if (res.status !== 201) throw new Error(`creating a product failed: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.id as string;
    },
    async stop() {
      await service.stop();
      await db.drop();
    },
  };
}

export type ProductService = Awaited<ReturnType<typeof startProductService>>;

/** inventory-service on a fresh database, talking to `productServiceUrl`. */
export async function startInventory(productServiceUrl: string, overrides: Record<string, string> = {}) {
  const db = await createTestDatabase('inventory');
  const service = await start(testEnv(db.url, { PRODUCT_SERVICE_URL: productServiceUrl, ...overrides }));
  return { service, db };
}

/** Another replica on the same database (different settings, same data). */
export const startReplica = (databaseUrl: string, productServiceUrl: string, overrides: Record<string, string> = {}) =>
  start(testEnv(databaseUrl, { PRODUCT_SERVICE_URL: productServiceUrl, ...overrides }));

export type Inventory = Awaited<ReturnType<typeof start>>;

/** Event types in the outbox about one aggregate (an order or a product), oldest first. */
export async function outboxTypes(service: Inventory, aggregateId: string): Promise<string[]> {
  const rows = await service.ctx.db.query<{ type: string }>('SELECT type FROM outbox WHERE aggregate_id = $1 ORDER BY seq', [aggregateId]);
  return rows.map((r) => r.type);
}

/** Payloads of one event type about one aggregate, oldest first. */
export async function outboxPayloads(service: Inventory, aggregateId: string, type: string): Promise<Record<string, unknown>[]> {
  const rows = await service.ctx.db.query<{ payload: Record<string, unknown> }>("SELECT envelope->'payload' AS payload FROM outbox WHERE aggregate_id = $1 AND type = $2 ORDER BY seq", [
    aggregateId,
    type,
  ]);
  return rows.map((r) => r.payload);
}

export const newOrderId = () => randomUUID();
