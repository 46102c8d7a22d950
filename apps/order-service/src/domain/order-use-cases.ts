import { createHash, randomUUID } from 'node:crypto';
import type { Identity } from '@cloudretail/auth';
import type { Db } from '@cloudretail/db';
import { AppError, type FieldIssue, conflict, notFound, validationFailed } from '@cloudretail/errors';
import { createEvent, enqueue } from '@cloudretail/events';
import type { OrderRepository } from '../data-access/order-repository';
import type { ProductCatalog } from '../data-access/product-catalog';
import { type Order, type OrderItem, type OrderList, type OrderQuery, type OrderRecord, type PlaceOrderInput, isFinal } from './order';
import type { OrderLifecycle } from './order-lifecycle';

interface Deps {
  db: Db;
  orders: OrderRepository;
  catalog: ProductCatalog;
  lifecycle: OrderLifecycle;
}

/** The public view of an order: the saga's bookkeeping stays inside. */
export const toOrder = ({ step: _s, paymentToken: _t, paymentId: _p, ...order }: OrderRecord): Order => order;

/** Same body, same hash: the parsed body has a fixed key order, so formatting does not matter. */
const hashOf = (input: PlaceOrderInput) => createHash('sha256').update(JSON.stringify(input)).digest('hex');

export function orderUseCases({ db, orders, catalog, lifecycle }: Deps) {
  /** The order a key already stands for: the same order for the same body, else 409. */
  async function replay(userId: string, key: string, requestHash: string): Promise<Order | null> {
    const existing = await orders.findIdempotencyKey(userId, key);
    if (!existing) return null;
    if (existing.requestHash !== requestHash) throw conflict('This Idempotency-Key was already used with a different request body');
    return toOrder((await orders.find(existing.orderId))!);
  }

  /** Prices every item from the catalog; unknown or inactive products are a 400 listing them all. */
  async function priceItems(input: PlaceOrderInput): Promise<{ items: OrderItem[]; totalCents: number; currency: string }> {
    const products = await catalog.findMany(input.items.map((i) => i.productId));
    const issues: FieldIssue[] = [];
    products.forEach((p, n) => {
      if (!p || !p.active) issues.push({ location: 'body', path: `items.${n}.productId`, message: 'unknown or inactive product' });
    });
    if (issues.length) throw validationFailed(issues);
    const currencies = new Set(products.map((p) => p!.currency));
    if (currencies.size > 1) throw new AppError('validation_failed', 'All items of an order must be priced in one currency', [{ location: 'body', path: 'items', message: `products are priced in ${[...currencies].join(', ')}` }]);
    const items = input.items.map((i, n) => ({ productId: i.productId, quantity: i.quantity, unitPriceCents: products[n]!.priceCents }));
    return { items, totalCents: items.reduce((sum, i) => sum + i.quantity * i.unitPriceCents, 0), currency: [...currencies][0] };
  }

  async function findVisible(id: string, caller: Identity): Promise<OrderRecord> {
    const order = await orders.find(id);
    // Someone else's order is "not found", not "forbidden": its existence is not revealed.
    if (!order || (caller.role !== 'admin' && order.userId !== caller.userId)) throw notFound('Order');
    return order;
  }

  return {
    /**
     * Accepts an order and starts the saga: the order (PENDING), its idempotency key and the
     * OrderPlaced event commit in one transaction. OrderPlaced carries the payment to take once the
     * stock is held (inventory passes it on to payment-service). `created` is false when the key
     * replays an earlier request (same body): that order is returned and nothing new happens.
     */
    async placeOrder(caller: Identity, idempotencyKey: string, input: PlaceOrderInput): Promise<{ order: Order; created: boolean }> {
      const requestHash = hashOf(input);
      let priced: Awaited<ReturnType<typeof priceItems>>;
      try {
        priced = await priceItems(input);
      } catch (error) {
        // A replay of an order whose product has gone since is still that order.
        const earlier = await replay(caller.userId, idempotencyKey, requestHash);
        if (earlier) return { order: earlier, created: false };
        throw error;
      }
      const id = randomUUID();
      const paymentId = randomUUID();
      const paymentToken = input.paymentMethod.token;
      const order = await db.transaction(async (tx) => {
        const inserted = await orders.insert({ id, userId: caller.userId, ...priced, paymentToken, paymentId }, { userId: caller.userId, key: idempotencyKey, requestHash }, tx);
        if (inserted) enqueue(tx, [createEvent('OrderPlaced', id, { orderId: id, userId: caller.userId, items: priced.items, totalCents: priced.totalCents, currency: priced.currency, paymentId, paymentToken })]);
        return inserted;
      });
      // null: the key was used before (or by a concurrent twin that committed first).
      if (order) return { order: toOrder(order), created: true };
      return { order: (await replay(caller.userId, idempotencyKey, requestHash))!, created: false };
    },

    async getOrder(id: string, caller: Identity): Promise<Order> {
      return toOrder(await findVisible(id, caller));
    },

    /** The caller's own orders, newest first. */
    async listOrders(query: OrderQuery, caller: Identity): Promise<OrderList> {
      const { items, total } = await orders.listByUser(caller.userId, query.page, query.limit);
      return { items: items.map(toOrder), page: query.page, limit: query.limit, total };
    },

    /**
     * Cancels before confirmation (owner or admin): CANCELLED cancelled_by_user, and OrderCancelled
     * makes inventory release the stock and payment refund or block the charge. Cancelling a
     * cancelled order returns it as it is; a CONFIRMED or REFUNDED one is a 409 (refund instead).
     */
    async cancelOrder(id: string, caller: Identity): Promise<Order> {
      await findVisible(id, caller);
      return db.transaction(async (tx) => {
        const order = (await orders.find(id, { tx, lock: true }))!;
        if (order.status === 'CANCELLED') return toOrder(order);
        if (isFinal(order.status)) throw conflict(`Order ${id} is ${order.status} and can no longer be cancelled`);
        return toOrder(await lifecycle.finish(order, { status: 'CANCELLED', reason: 'cancelled_by_user' }, tx));
      });
    },
  };
}

export type OrderUseCases = ReturnType<typeof orderUseCases>;
