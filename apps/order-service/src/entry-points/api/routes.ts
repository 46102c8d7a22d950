import type { Auth } from '@cloudretail/auth';
import { identityOf } from '@cloudretail/auth';
import { type RequestHandler, createApi, parseRequest } from '@cloudretail/http';
import { IdParams, IdempotencyKeyHeader, Order, OrderList, OrderQuery, PlaceOrderInput } from '../../domain/order';
import type { OrderUseCases } from '../../domain/order-use-cases';

/**
 * The orders API; every route needs a user token, and a user only ever sees their own orders.
 * `admission` guards POST /orders (load shedding, see main.ts).
 */
export function orderApi(useCases: OrderUseCases, auth: Auth, admission: RequestHandler[] = []) {
  const api = createApi({ title: 'order-service', version: '1.0.0', description: 'CloudRetail orders; placing one starts the checkout saga' });
  const user = [auth.authenticate];
  // A body or key that can only be a 400 is rejected before admission: garbage never takes a slot
  // (or bumps the in-flight count) that a real order would then be shed for.
  const validPlacement: RequestHandler = (req, _res, next) => {
    parseRequest(req, { body: PlaceOrderInput, headers: IdempotencyKeyHeader });
    next();
  };

  api.route(
    {
      method: 'post',
      path: '/orders', operationId: 'placeOrder',
      summary: 'Place an order: 202 PENDING, then the saga confirms or cancels it. Repeating the key with the same body returns the same order (200)',
      auth: 'user',
      body: PlaceOrderInput,
      headers: { 'Idempotency-Key': { required: true, description: 'Client-chosen key; a retry with the same key and body never creates a second order' } },
      responses: { 202: Order, 200: Order, 409: null, 503: null },
      before: [...user, validPlacement, ...admission],
    },
    async ({ body }, req, res) => {
      const { headers } = parseRequest(req, { headers: IdempotencyKeyHeader });
      const { order, created } = await useCases.placeOrder(identityOf(req), headers['idempotency-key'], body);
      res.status(created ? 202 : 200).json(order);
    },
  );
  api.route(
    { method: 'get', path: '/orders', operationId: 'listOrders', summary: "The caller's orders, newest first", auth: 'user', query: OrderQuery, responses: { 200: OrderList }, before: user },
    async ({ query }, req, res) => res.json(await useCases.listOrders(query, identityOf(req))),
  );
  api.route(
    { method: 'get', path: '/orders/:id', operationId: 'getOrder', summary: 'An order (owner or admin; anyone else gets 404)', auth: 'user', params: IdParams, responses: { 200: Order }, before: user },
    async ({ params }, req, res) => res.json(await useCases.getOrder(params.id, identityOf(req))),
  );
  api.route(
    {
      method: 'post',
      path: '/orders/:id/cancel', operationId: 'cancelOrder',
      summary: 'Cancel an order before it is CONFIRMED (owner or admin); 409 once confirmed or refunded',
      auth: 'user',
      params: IdParams,
      responses: { 200: Order, 409: null },
      before: user,
    },
    async ({ params }, req, res) => res.json(await useCases.cancelOrder(params.id, identityOf(req))),
  );
  return api;
}
