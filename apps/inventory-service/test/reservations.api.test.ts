import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { eventually } from '@cloudretail/testing';
import {
  type Inventory,
  type ProductService,
  adminToken,
  customerToken,
  newOrderId,
  outboxPayloads,
  outboxTypes,
  startInventory,
  startProductService,
  startReplica,
} from './helpers';

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

const api = (target = service) => request(target.url);
const asAdmin = (req: request.Test) => req.set('authorization', adminToken);

/** A catalog product with `available` units in stock. */
const stockedProduct = async (available: number) => {
  const productId = await products.createProduct();
  expect((await asAdmin(api().put(`/inventory/${productId}`)).send({ available })).status).toBe(200);
  return productId;
};
const stockOf = async (productId: string) => {
  const { available, reserved } = (await api().get(`/inventory/${productId}`)).body;
  return { available, reserved };
};
const reserve = (orderId: string, items: { productId: string; quantity: number }[], target = service) =>
  asAdmin(api(target).post('/reservations')).send({ orderId, items });
const commit = (orderId: string) => asAdmin(api().post(`/reservations/${orderId}/commit`));
const release = (orderId: string, reason?: string) => asAdmin(api().post(`/reservations/${orderId}/release`)).send(reason ? { reason } : {});

describe('POST /reservations', () => {
  it('when every item is in stock, then 201 RESERVED, units move from available to reserved, and StockReserved is in the outbox', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    const before = Date.now();

    const res = await reserve(orderId, [{ productId, quantity: 3 }]);

    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ orderId, status: 'RESERVED', items: [{ productId, quantity: 3 }] });
    const ttl = Date.parse(res.body.expiresAt) - before;
    expect(ttl).toBeGreaterThan(14 * 60_000);
    expect(ttl).toBeLessThanOrEqual(15 * 60_000 + 1000);
    expect(await stockOf(productId)).toEqual({ available: 7, reserved: 3 });
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved']);
    expect(await outboxPayloads(service, orderId, 'StockReserved')).toEqual([{ orderId, items: [{ productId, quantity: 3 }] }]);
  });

  it('when one item is short, then 409 listing the short products, and nothing is reserved for any item', async () => {
    const plenty = await stockedProduct(10);
    const scarce = await stockedProduct(1);
    const neverStocked = await products.createProduct();
    const orderId = newOrderId();

    const res = await reserve(orderId, [
      { productId: plenty, quantity: 2 },
      { productId: scarce, quantity: 3 },
      { productId: neverStocked, quantity: 1 },
    ]);

    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    expect(res.body.error.details).toEqual(
      expect.arrayContaining([
        { productId: scarce, requested: 3, available: 1, reason: 'out_of_stock' },
        { productId: neverStocked, requested: 1, available: 0, reason: 'out_of_stock' },
      ]),
    );
    expect(res.body.error.details).toHaveLength(2);
    expect(await stockOf(plenty)).toEqual({ available: 10, reserved: 0 });
    expect(await stockOf(scarce)).toEqual({ available: 1, reserved: 0 });
    expect((await asAdmin(api().get(`/reservations/${orderId}`))).status).toBe(404);
    expect(await outboxTypes(service, orderId)).toEqual(['StockReservationFailed']);
    const [failed] = await outboxPayloads(service, orderId, 'StockReservationFailed');
    expect(failed).toMatchObject({ orderId, reason: 'out_of_stock' });
    expect((failed.productIds as string[]).sort()).toEqual([scarce, neverStocked].sort());
  });

  it('when an order that was out of stock is retried after a restock, then it is reserved', async () => {
    const productId = await stockedProduct(1);
    const orderId = newOrderId();
    expect((await reserve(orderId, [{ productId, quantity: 2 }])).status).toBe(409);

    await asAdmin(api().put(`/inventory/${productId}`)).send({ available: 5 });
    const retry = await reserve(orderId, [{ productId, quantity: 2 }]);

    expect(retry.status).toBe(201);
    expect(await stockOf(productId)).toEqual({ available: 3, reserved: 2 });
  });

  it('when the same orderId is sent again, then 200 with the same reservation and stock moves only once', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    const first = await reserve(orderId, [{ productId, quantity: 4 }]);

    const again = await reserve(orderId, [{ productId, quantity: 4 }]);

    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(await stockOf(productId)).toEqual({ available: 6, reserved: 4 });
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved']);
  });

  it('when the same orderId comes back with different items, then 409 and stock is unchanged', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    await reserve(orderId, [{ productId, quantity: 1 }]);

    const res = await reserve(orderId, [{ productId, quantity: 2 }]);

    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    expect(await stockOf(productId)).toEqual({ available: 9, reserved: 1 });
  });

  it('when a product appears on two lines, then they are reserved as one line with the summed quantity', async () => {
    const productId = await stockedProduct(10);
    const res = await reserve(newOrderId(), [
      { productId, quantity: 1 },
      { productId, quantity: 2 },
    ]);
    expect(res.status).toBe(201);
    expect(res.body.items).toEqual([{ productId, quantity: 3 }]);
    expect(await stockOf(productId)).toEqual({ available: 7, reserved: 3 });
  });

  it('when a reservation takes available below the threshold, then LowStock is in the outbox for the product', async () => {
    const productId = await stockedProduct(6);
    await reserve(newOrderId(), [{ productId, quantity: 2 }]);
    expect(await outboxPayloads(service, productId, 'LowStock')).toEqual([{ productId, available: 4, threshold: 5 }]);
  });

  it('when the body is invalid, then 400 lists every bad field', async () => {
    const res = await asAdmin(api().post('/reservations')).send({ orderId: 'nope', items: [{ productId: 'x', quantity: 0 }] });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['items.0.productId', 'items.0.quantity', 'orderId']);
    const empty = await asAdmin(api().post('/reservations')).send({ orderId: newOrderId(), items: [] });
    expect(empty.status).toBe(400);
  });

  it('when there is no token, then 401; when the caller is a customer, then 403; nothing is reserved', async () => {
    const productId = await stockedProduct(5);
    const body = { orderId: newOrderId(), items: [{ productId, quantity: 1 }] };
    expect((await api().post('/reservations').send(body)).status).toBe(401);
    expect((await api().post('/reservations').set('authorization', customerToken).send(body)).status).toBe(403);
    expect((await api().post(`/reservations/${body.orderId}/commit`).set('authorization', customerToken)).status).toBe(403);
    expect(await stockOf(productId)).toEqual({ available: 5, reserved: 0 });
  });
});

describe('POST /reservations/:orderId/commit', () => {
  it('when a held reservation is committed, then its units leave reserved for good and StockCommitted is in the outbox; repeating is a no-op', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    await reserve(orderId, [{ productId, quantity: 3 }]);

    const res = await commit(orderId);
    const again = await commit(orderId);

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ orderId, status: 'COMMITTED', items: [{ productId, quantity: 3 }] });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('COMMITTED');
    expect(await stockOf(productId)).toEqual({ available: 7, reserved: 0 });
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockCommitted']);
  });

  it('when the reservation was released, then 409 and stock is unchanged', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    await reserve(orderId, [{ productId, quantity: 3 }]);
    await release(orderId);

    const res = await commit(orderId);

    expect(res.status).toBe(409);
    expect(await stockOf(productId)).toEqual({ available: 10, reserved: 0 });
  });

  it('when the order has no reservation, then 404; a malformed orderId is 400', async () => {
    expect((await commit(randomUUID())).status).toBe(404);
    expect((await commit('not-a-uuid')).status).toBe(400);
  });
});

describe('POST /reservations/:orderId/release', () => {
  it('when a held reservation is released, then its units go back on sale and StockReleased carries the reason; repeating is a no-op', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    await reserve(orderId, [{ productId, quantity: 4 }]);

    const res = await release(orderId, 'payment_declined');
    const again = await release(orderId, 'payment_declined');

    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ orderId, status: 'RELEASED' });
    expect(again.status).toBe(200);
    expect(await stockOf(productId)).toEqual({ available: 10, reserved: 0 });
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockReleased']);
    expect(await outboxPayloads(service, orderId, 'StockReleased')).toEqual([{ orderId, items: [{ productId, quantity: 4 }], reason: 'payment_declined' }]);
  });

  it('when the reservation was committed, then 409 conflict and the sold units stay sold', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    await reserve(orderId, [{ productId, quantity: 2 }]);
    await commit(orderId);

    const res = await release(orderId);

    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('conflict');
    expect(await stockOf(productId)).toEqual({ available: 8, reserved: 0 });
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockCommitted']);
  });
});

describe('reservation expiry', () => {
  let replica: Inventory;
  beforeAll(async () => {
    // A replica on the same database whose reservations live 1 s and whose sweeper runs every 50 ms.
    replica = await startReplica(db.url, products.url, { RESERVATION_TTL_MS: '1000', RESERVATION_SWEEP_INTERVAL_MS: '50' });
  });
  afterAll(() => replica.stop());


  it('when a reservation is not committed within the TTL, then the sweeper releases it with reason expired (a late commit sells from available again: late-commit.test.ts)', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    expect((await reserve(orderId, [{ productId, quantity: 5 }], replica)).status).toBe(201);

    await eventually(async () => expect((await asAdmin(api().get(`/reservations/${orderId}`))).body.status).toBe('RELEASED'), { timeoutMs: 5000 });

    expect(await stockOf(productId)).toEqual({ available: 10, reserved: 0 });
    expect(await outboxPayloads(service, orderId, 'StockReleased')).toEqual([{ orderId, items: [{ productId, quantity: 5 }], reason: 'expired' }]);
    expect((await commit(orderId)).status).toBe(200);
    expect(await stockOf(productId)).toEqual({ available: 5, reserved: 0 });
    expect((await request(replica.url).get('/metrics')).text).toMatch(/inventory_reservations_expired_total\{service="inventory-service"\} [1-9]/);
  });

  it('when a committed reservation is past its expiry, then the sweeper leaves it alone', async () => {
    const productId = await stockedProduct(10);
    const orderId = newOrderId();
    await reserve(orderId, [{ productId, quantity: 2 }]);
    expect((await commit(orderId)).status).toBe(200);
    await service.ctx.db.execute("UPDATE reservations SET expires_at = now() - interval '1 minute' WHERE order_id = $1", [orderId]);

    await new Promise((resolve) => setTimeout(resolve, 500)); // ten sweeps of the replica

    expect(await stockOf(productId)).toEqual({ available: 8, reserved: 0 });
    expect(await outboxTypes(service, orderId)).toEqual(['StockReserved', 'StockCommitted']);
  });
});
