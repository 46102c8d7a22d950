import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { type Inventory, type ProductService, adminToken, customerToken, outboxPayloads, outboxTypes, startInventory, startProductService, startReplica } from './helpers';

let products: ProductService;
let service: Inventory;
let db: Awaited<ReturnType<typeof startInventory>>['db'];

beforeAll(async () => {
  products = await startProductService();
  ({ service, db } = await startInventory(products.url));
});
afterAll(async () => {
  await service.stop();
  await db.drop();
  await products.stop();
});

const api = () => request(service.url);
const putStock = (productId: string, body: unknown, token = adminToken) => api().put(`/inventory/${productId}`).set('authorization', token).send(body as object);

describe('GET /inventory/:productId', () => {
  it('when the catalog knows the product but it was never stocked, then 200 with zeros', async () => {
    const productId = await products.createProduct();
    const res = await api().get(`/inventory/${productId}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ productId, available: 0, reserved: 0 });
  });

  it('when the catalog does not know the product, then 404 in the error envelope', async () => {
    const res = await api().get(`/inventory/${randomUUID()}`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('when the product id is not a uuid, then 400 naming productId', async () => {
    const res = await api().get('/inventory/not-a-uuid');
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([expect.objectContaining({ location: 'params', path: 'productId' })]);
  });
});

describe('PUT /inventory/:productId', () => {
  it('when an admin sets the level, then 200 with it, reads return it, and StockLevelSet is in the outbox', async () => {
    const productId = await products.createProduct();
    const res = await putStock(productId, { available: 42 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ productId, available: 42, reserved: 0 });
    expect((await api().get(`/inventory/${productId}`)).body).toEqual({ productId, available: 42, reserved: 0 });
    expect(await outboxTypes(service, productId)).toEqual(['StockLevelSet']);
    expect(await outboxPayloads(service, productId, 'StockLevelSet')).toEqual([{ productId, available: 42 }]);
  });

  it('when the level drops below the threshold, then LowStock is published once for that crossing', async () => {
    const productId = await products.createProduct();
    await putStock(productId, { available: 10 });
    await putStock(productId, { available: 3 });
    await putStock(productId, { available: 2 });
    expect(await outboxTypes(service, productId)).toEqual(['StockLevelSet', 'StockLevelSet', 'LowStock', 'StockLevelSet']);
    expect(await outboxPayloads(service, productId, 'LowStock')).toEqual([{ productId, available: 3, threshold: 5 }]);
  });

  it('when the catalog does not know the product, then 404 and nothing is stored', async () => {
    const productId = randomUUID();
    const res = await putStock(productId, { available: 5 });
    expect(res.status).toBe(404);
    expect(await outboxTypes(service, productId)).toEqual([]);
  });

  it('when there is no token, then 401; when the caller is a customer, then 403; the level is unchanged', async () => {
    const productId = await products.createProduct();
    expect((await api().put(`/inventory/${productId}`).send({ available: 5 })).status).toBe(401);
    const asCustomer = await putStock(productId, { available: 5 }, customerToken);
    expect(asCustomer.status).toBe(403);
    expect(asCustomer.body.error.code).toBe('forbidden');
    expect((await api().get(`/inventory/${productId}`)).body.available).toBe(0);
  });

  it.each([[{ available: -1 }], [{ available: 'ten' }], [{ available: 1.5 }], [{}], [{ available: 1, reserved: 3 }]])(
    'when the body is %j, then 400 validation_failed',
    async (body) => {
      const productId = await products.createProduct();
      const res = await putStock(productId, body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
      expect(res.body.error.details.length).toBeGreaterThan(0);
    },
  );

  it('when the product id is malformed and the body bad too, then 400 lists both', async () => {
    const res = await putStock('1234', { available: -1 });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { location: string; path: string }) => `${d.location}.${d.path}`).sort()).toEqual(['body.available', 'params.productId']);
  });
});

describe('when product-service is unreachable', () => {
  let isolated: Inventory;
  beforeAll(async () => {
    // Port 1 refuses connections: the same failure as a product-service that is down.
    isolated = await startReplica(db.url, 'http://127.0.0.1:1', { PRODUCT_SERVICE_TIMEOUT_MS: '500' });
  });
  afterAll(() => isolated.stop());

  it('then reading an unstocked product or setting a level is 503 service_unavailable, not 500', async () => {
    const productId = randomUUID();
    const read = await request(isolated.url).get(`/inventory/${productId}`);
    expect(read.status).toBe(503);
    expect(read.body.error.code).toBe('service_unavailable');
    const write = await request(isolated.url).put(`/inventory/${productId}`).set('authorization', adminToken).send({ available: 1 });
    expect(write.status).toBe(503);
    expect(write.body.error.code).toBe('service_unavailable');
    expect(JSON.stringify(write.body)).not.toMatch(/ECONNREFUSED|at .*\.ts/);
  });

  it('then a product already stocked is still served from the inventory database', async () => {
    const productId = await products.createProduct();
    await putStock(productId, { available: 7 });
    const res = await request(isolated.url).get(`/inventory/${productId}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ productId, available: 7, reserved: 0 });
  });
});

describe('when product-service does not answer in time', () => {
  let hanging: http.Server;
  let slow: Inventory;
  beforeAll(async () => {
    hanging = http.createServer(() => undefined); // accepts the request, never responds
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    slow = await startReplica(db.url, `http://127.0.0.1:${(hanging.address() as AddressInfo).port}`, { PRODUCT_SERVICE_TIMEOUT_MS: '200' });
  });
  afterAll(async () => {
    await slow.stop();
    hanging.closeAllConnections();
    await new Promise((resolve) => hanging.close(resolve));
  });

  it('then the request fails with 503 after the timeout instead of hanging', async () => {
    const started = Date.now();
    const res = await request(slow.url).get(`/inventory/${randomUUID()}`);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('service_unavailable');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('operations', () => {
  it('serves an OpenAPI document with the stock and reservation routes', async () => {
    const res = await api().get('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.0.3');
    expect(Object.keys(res.body.paths).sort()).toEqual([
      '/inventory/{productId}',
      '/reservations',
      '/reservations/{orderId}',
      '/reservations/{orderId}/commit',
      '/reservations/{orderId}/release',
    ]);
    expect(res.body.paths['/inventory/{productId}'].put.requestBody.content['application/json'].schema.required).toEqual(['available']);
    expect(res.body.paths['/reservations'].post['x-required-role']).toBe('admin');
  });

  it('reports readiness with postgres and redis up, and metrics by route template', async () => {
    const ready = await api().get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ postgres: { status: 'up' }, redis: { status: 'up' } });
    const metrics = await api().get('/metrics');
    expect(metrics.text).toMatch(/http_requests_total\{method="GET",route="\/inventory\/:productId",status="\d+"/);
  });
});
