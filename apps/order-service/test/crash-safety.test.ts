import { createSequelize } from '@cloudretail/db';
import { createTestDatabase } from '@cloudretail/testing';
import { type ChildService, spawnOrderService } from './support/child-process';
import { type Customer, type System, eventually, newCustomer, placeOrder, rows, startSystem } from './support/system';

let system: System;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let child: ChildService | undefined;

beforeAll(async () => {
  // A queue for the whole batch: this test is about the crash, not about load shedding.
  system = await startSystem({ without: ['order-service'], env: { 'order-service': { EVENT_CLAIM_IDLE_MS: '1000', ORDER_PLACEMENT_QUEUE: '64', ORDER_MIN_PENDING: '64' } } });
  database = await createTestDatabase('orders_crash');
}, 60_000);
afterAll(async () => {
  await child?.stop();
  await system.stop();
  await database.drop();
});

const INITIAL = 25;

describe('order-service crash safety', () => {
  it('when order-service is killed -9 in the middle of a batch and restarted, then every order ends final, none is charged twice and stock is conserved', async () => {
    // Arrange: three products with known stock, order-service as a real process
    const productIds = [await system.stockedProduct({ available: INITIAL }), await system.stockedProduct({ available: INITIAL }), await system.stockedProduct({ available: INITIAL })];
    const env = system.orderServiceEnv(database.url);
    child = await spawnOrderService(env);
    const customers: Customer[] = Array.from({ length: 3 }, () => newCustomer());
    const url = child.url;

    // Act: 30 concurrent orders (a few declined), and a SIGKILL once the first answers are back
    let answered = 0;
    let firstAnswers!: () => void;
    const fewAnswered = new Promise<void>((resolve) => (firstAnswers = resolve));
    const batch = Array.from({ length: 30 }, (_, n) =>
      placeOrder(url, customers[n % 3], {
        items: [{ productId: productIds[n % 3], quantity: 1 + (n % 3) }, { productId: productIds[(n + 1) % 3], quantity: 1 }],
        token: n % 7 === 0 ? 'tok_chargeDeclined' : 'tok_visa',
      })
        .then((res) => ({ status: res.status, id: res.body?.id as string | undefined }))
        .catch(() => ({ status: 0, id: undefined })) // cut off by the crash
        .finally(() => {
          if (++answered === 5) firstAnswers();
        }),
    );
    await fewAnswered;
    await child.kill9();
    const results = await Promise.all(batch);
    child = await spawnOrderService(env);

    // Assert: accepted orders exist and every order in the database reaches a final status
    const accepted = results.filter((r) => r.status === 202).map((r) => r.id!);
    expect(accepted.length).toBeGreaterThanOrEqual(5);
    expect(results.filter((r) => r.status !== 202 && r.status !== 0)).toEqual([]); // no 5xx on the way down
    expect(results.some((r) => r.status === 0)).toBe(true); // the crash did cut the batch
    const orders = createSequelize(database.url);
    try {
      const all = await eventually(
        async () => {
          const found = await rows<{ id: string; status: string }>(orders, 'SELECT id, status FROM orders');
          expect(found.filter((o) => o.status === 'PENDING')).toEqual([]);
          return found;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      expect(all.map((o) => o.id)).toEqual(expect.arrayContaining(accepted));

      // no order was charged twice, and only confirmed orders keep a charge
      const payments = system.payments!.service.ctx.sequelize;
      const captures = await rows<{ order_id: string; captures: string }>(
        payments,
        "SELECT p.order_id, count(*) AS captures FROM payments p JOIN payment_status_history h ON h.payment_id = p.id WHERE h.status = 'CAPTURED' GROUP BY p.order_id",
      );
      expect(captures.filter((c) => Number(c.captures) > 1)).toEqual([]);
      const captured = await rows<{ order_id: string }>(payments, "SELECT order_id FROM payments WHERE status = 'CAPTURED'");
      const confirmed = all.filter((o) => o.status === 'CONFIRMED').map((o) => o.id);
      expect(captured.map((c) => c.order_id).sort()).toEqual([...confirmed].sort());

      // stock is conserved: initial = available + reserved + sold, and in the end nothing stays reserved
      const inventory = system.inventory!.service.ctx.sequelize;
      await eventually(
        async () => {
          const levels = await rows<{ product_id: string; available: number; reserved: number; sold: string }>(
            inventory,
            `SELECT s.product_id, s.available, s.reserved, COALESCE(sum(i.quantity) FILTER (WHERE r.status = 'COMMITTED' AND sr.order_id IS NULL), 0) AS sold
             FROM stock s
             LEFT JOIN reservation_items i ON i.product_id = s.product_id
             LEFT JOIN reservations r ON r.order_id = i.order_id
             LEFT JOIN stock_returns sr ON sr.order_id = r.order_id
             WHERE s.product_id = ANY($1::uuid[]) GROUP BY s.product_id, s.available, s.reserved`,
            [productIds],
          );
          expect(levels).toHaveLength(3);
          for (const level of levels) {
            expect({ productId: level.product_id, total: level.available + level.reserved + Number(level.sold) }).toEqual({ productId: level.product_id, total: INITIAL });
            expect(level.reserved).toBe(0);
          }
        },
        { timeoutMs: 30_000, intervalMs: 250 },
      );
    } finally {
      await orders.close();
    }
  }, 180_000);
});
