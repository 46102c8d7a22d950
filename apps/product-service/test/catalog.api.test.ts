import request from 'supertest';
import { signTestToken, build, createTestDatabase, testEnv } from '@cloudretail/testing';
import { start } from '../src/main';

type Running = Awaited<ReturnType<typeof start>>;
let service: Running;
let db: Awaited<ReturnType<typeof createTestDatabase>>;
const auth = { sign: signTestToken };
const admin = `Bearer ${auth.sign({ userId: '00000000-0000-4000-8000-000000000001', role: 'admin' })}`;
const customer = `Bearer ${auth.sign({ userId: '00000000-0000-4000-8000-000000000002', role: 'customer' })}`;

beforeAll(async () => {
  db = await createTestDatabase('product');
  service = await start(testEnv(db.url));
});
afterAll(async () => {
  await service.stop();
  await db.drop();
});

const api = () => request(service.url);
const createProduct = async (overrides: Record<string, unknown> = {}) => {
  const res = await api().post('/products').set('authorization', admin).send(build.product(overrides));
  expect(res.status).toBe(201);
  return res.body;
};
const outbox = async (aggregateId: string) =>
  (await service.ctx.db.query<{ type: string }>('SELECT type FROM outbox WHERE aggregate_id = $1 ORDER BY seq', [aggregateId])).map((r) => r.type);

describe('POST /products', () => {
  it('when an admin creates a product, then 201 with the product, and ProductCreated is in the outbox', async () => {
    const input = build.product({ currency: undefined });
    const res = await api().post('/products').set('authorization', admin).send(input);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ sku: input.sku, name: input.name, priceCents: input.priceCents, currency: 'USD', active: true });
    expect(res.body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(await outbox(res.body.id)).toEqual(['ProductCreated']);
  });

  it('when the sku already exists, then 409 and no second outbox row', async () => {
    const first = await createProduct();
    const res = await api().post('/products').set('authorization', admin).send(build.product({ sku: first.sku }));
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    const [{ count }] = await service.ctx.db.query<{ count: number }>("SELECT count(*)::int AS count FROM outbox WHERE envelope->'payload'->>'sku' = $1", [first.sku]);
    expect(count).toBe(1);
  });

  it('when the body has several bad fields, then 400 lists every one', async () => {
    const res = await api().post('/products').set('authorization', admin).send({ sku: 'bad sku!', priceCents: -5, currency: 'usd', extra: 1 });
    expect(res.status).toBe(400);
    const paths = res.body.error.details.map((d: { path: string }) => d.path);
    expect(paths).toEqual(expect.arrayContaining(['sku', 'name', 'category', 'priceCents', 'currency']));
  });

  it('when there is no token, then 401; when the caller is a customer, then 403', async () => {
    expect((await api().post('/products').send(build.product())).status).toBe(401);
    expect((await api().post('/products').set('authorization', customer).send(build.product())).status).toBe(403);
  });
});

describe('GET /products/:id', () => {
  it('returns the product to anyone; an unknown id is 404 and a malformed id is 400', async () => {
    const product = await createProduct();
    const res = await api().get(`/products/${product.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(product);
    expect((await api().get('/products/7d7e2c43-3d44-4f1c-9a4a-3d5c5c7e0000')).status).toBe(404);
    expect((await api().get('/products/not-a-uuid')).status).toBe(400);
  });

  it('when an admin updates a cached product, then the next read after the response sees the update', async () => {
    const product = await createProduct({ priceCents: 1000 });
    expect((await api().get(`/products/${product.id}`)).body.priceCents).toBe(1000); // now cached
    const patched = await api().patch(`/products/${product.id}`).set('authorization', admin).send({ priceCents: 1250, name: 'Renamed' });
    expect(patched.status).toBe(200);
    const after = await api().get(`/products/${product.id}`);
    expect(after.body).toMatchObject({ priceCents: 1250, name: 'Renamed' });
    expect(await outbox(product.id)).toEqual(['ProductCreated', 'ProductUpdated']);
  });
});

describe('DELETE /products/:id', () => {
  it('soft-deletes: 204, hidden from lists and public reads, still visible to admins', async () => {
    const category = `cat-${Date.now()}`;
    const product = await createProduct({ category });
    expect((await api().get(`/products?category=${category}`)).body.total).toBe(1);
    expect((await api().delete(`/products/${product.id}`).set('authorization', admin)).status).toBe(204);
    expect((await api().get(`/products?category=${category}`)).body).toMatchObject({ items: [], total: 0 });
    expect((await api().get(`/products/${product.id}`)).status).toBe(404);
    const asAdmin = await api().get(`/products/${product.id}`).set('authorization', admin);
    expect(asAdmin.body.active).toBe(false);
    expect(await outbox(product.id)).toEqual(['ProductCreated', 'ProductDeleted']);
  });
});

describe('GET /products', () => {
  it('paginates with a stable order, filters by category and searches name and description', async () => {
    const category = `list-${Date.now()}`;
    await createProduct({ category, name: 'Banana hammock', description: 'yellow' });
    await createProduct({ category, name: 'Apple crate', description: 'holds waterproof fruit' });
    await createProduct({ category, name: 'Cherry picker', description: 'tall ladder' });

    const page1 = await api().get(`/products?category=${category}&limit=2&page=1`);
    expect(page1.body).toMatchObject({ page: 1, limit: 2, total: 3 });
    expect(page1.body.items.map((p: { name: string }) => p.name)).toEqual(['Apple crate', 'Banana hammock']);
    const page2 = await api().get(`/products?category=${category}&limit=2&page=2`);
    expect(page2.body.items.map((p: { name: string }) => p.name)).toEqual(['Cherry picker']);

    const search = await api().get(`/products?category=${category}&q=waterproof`);
    expect(search.body.items.map((p: { name: string }) => p.name)).toEqual(['Apple crate']);
  });

  it('when a filter holds a NUL character (%00), then 400 naming it, not a database error', async () => {
    const res = await api().get('/products?page=5&category=a%00b&q=x%00');
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string; message: string }) => `${d.path}: ${d.message}`).sort()).toEqual([
      'category: must not contain the NUL character',
      'q: must not contain the NUL character',
    ]);
  });

  it('when limit is over 100 or page is not a number, then 400 naming both', async () => {
    const res = await api().get('/products?limit=101&page=zero');
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['limit', 'page']);
  });
});

describe('operations', () => {
  it('serves an OpenAPI document generated from the validation schemas', async () => {
    const res = await api().get('/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.0.3');
    expect(Object.keys(res.body.paths)).toEqual(['/products', '/products/{id}']);
    expect(res.body.paths['/products'].post.requestBody.content['application/json'].schema.required).toEqual(
      expect.arrayContaining(['sku', 'name', 'category', 'priceCents']),
    );
  });

  it('reports readiness with each dependency, and metrics by route template', async () => {
    const ready = await api().get('/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ postgres: { status: 'up' }, redis: { status: 'up' } });
    const metrics = await api().get('/metrics');
    expect(metrics.text).toMatch(/http_requests_total\{method="GET",route="\/products\/:id",status="200"/);
  });
});
