import request from 'supertest';
import { type Inventory, type ProductService, adminToken, newOrderId, outboxTypes, startInventory, startProductService, startReplica } from './helpers';

let products: ProductService;
let service: Inventory;
let replica: Inventory;
let db: Awaited<ReturnType<typeof startInventory>>['db'];

// Two replicas on one database, as in production: correctness must come from Postgres, not from
// anything held in one process's memory.
beforeAll(async () => {
  products = await startProductService();
  ({ service, db } = await startInventory(products.url));
  replica = await startReplica(db.url, products.url);
});
afterAll(async () => {
  await replica.stop();
  await service.stop();
  await db.drop();
  await products.stop();
});

const stockedProduct = async (available: number) => {
  const productId = await products.createProduct();
  expect((await request(service.url).put(`/inventory/${productId}`).set('authorization', adminToken).send({ available })).status).toBe(200);
  return productId;
};
const stockOf = async (productId: string) => {
  const { available, reserved } = (await request(service.url).get(`/inventory/${productId}`)).body;
  return { available, reserved };
};
const reserve = (target: Inventory, orderId: string, items: { productId: string; quantity: number }[]) =>
  request(target.url).post('/reservations').set('authorization', adminToken).send({ orderId, items });

it('when 50 orders race for 10 units, then exactly 10 are reserved, 40 get 409, and available ends at 0 with 10 reserved', async () => {
  const productId = await stockedProduct(10);

  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => reserve(i % 2 ? replica : service, newOrderId(), [{ productId, quantity: 1 }])));

  const statuses = results.map((r) => r.status);
  expect(statuses.filter((s) => s === 201)).toHaveLength(10);
  expect(statuses.filter((s) => s === 409)).toHaveLength(40);
  expect(await stockOf(productId)).toEqual({ available: 0, reserved: 10 });
});

it('when 20 identical calls for one order arrive at once, then one reservation exists and stock moves once', async () => {
  const productId = await stockedProduct(100);
  const orderId = newOrderId();

  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => reserve(i % 2 ? replica : service, orderId, [{ productId, quantity: 3 }])));

  const statuses = results.map((r) => r.status);
  expect(statuses.filter((s) => s === 201)).toHaveLength(1);
  expect(statuses.filter((s) => s === 200)).toHaveLength(19);
  expect(new Set(results.map((r) => JSON.stringify(r.body))).size).toBe(1);
  expect(await stockOf(productId)).toEqual({ available: 97, reserved: 3 });
  expect(await outboxTypes(service, orderId)).toEqual(['StockReserved']);
});

it('when orders with overlapping products in opposite order race, then none deadlocks and the units add up', async () => {
  const a = await stockedProduct(30);
  const b = await stockedProduct(30);

  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      reserve(i % 2 ? replica : service, newOrderId(), i % 2 ? [{ productId: a, quantity: 1 }, { productId: b, quantity: 1 }] : [{ productId: b, quantity: 1 }, { productId: a, quantity: 1 }]),
    ),
  );

  expect(results.map((r) => r.status)).toEqual(Array(20).fill(201));
  expect(await stockOf(a)).toEqual({ available: 10, reserved: 20 });
  expect(await stockOf(b)).toEqual({ available: 10, reserved: 20 });
});

it('when releases and commits race with new reservations, then available never goes negative and units are conserved', async () => {
  const productId = await stockedProduct(20);
  const held = await Promise.all(Array.from({ length: 10 }, async () => {
    const orderId = newOrderId();
    expect((await reserve(service, orderId, [{ productId, quantity: 2 }])).status).toBe(201);
    return orderId;
  }));
  const admin = (target: Inventory, path: string) => request(target.url).post(path).set('authorization', adminToken).send({});

  // Five held orders are released (2 units each back on sale) and five committed, while 15 new orders compete.
  const [releases, commits, fresh] = await Promise.all([
    Promise.all(held.slice(0, 5).map((id, i) => admin(i % 2 ? replica : service, `/reservations/${id}/release`))),
    Promise.all(held.slice(5).map((id, i) => admin(i % 2 ? service : replica, `/reservations/${id}/commit`))),
    Promise.all(Array.from({ length: 15 }, (_, i) => reserve(i % 2 ? replica : service, newOrderId(), [{ productId, quantity: 1 }]))),
  ]);

  expect(releases.map((r) => r.status)).toEqual(Array(5).fill(200));
  expect(commits.map((r) => r.status)).toEqual(Array(5).fill(200));
  const won = fresh.filter((r) => r.status === 201).length;
  expect(won + fresh.filter((r) => r.status === 409).length).toBe(15);
  const { available, reserved } = await stockOf(productId);
  expect(available).toBeGreaterThanOrEqual(0);
  // 20 units: 10 sold by the commits, `won` held by new orders, the rest on sale.
  expect({ available, reserved }).toEqual({ available: 10 - won, reserved: won });
});
