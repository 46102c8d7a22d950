import type { Auth } from '@cloudretail/auth';
import { requireRole } from '@cloudretail/auth';
import { AppError } from '@cloudretail/errors';
import { createApi } from '@cloudretail/http';
import { OrderIdParams, ProductIdParams, ReleaseInput, Reservation, ReservationInput, StockInput, StockLevel } from '../../domain/inventory';
import type { ReservationUseCases } from '../../domain/reservation-use-cases';
import type { StockUseCases } from '../../domain/stock-use-cases';

/**
 * Public stock API (`/inventory`, reached through the gateway) and the internal reservation API
 * (`/reservations`, which the gateway does not forward; services call it with an admin token).
 */
export function inventoryApi({ stock, reservations }: { stock: StockUseCases; reservations: ReservationUseCases }, auth: Auth) {
  const api = createApi({ title: 'inventory-service', version: '1.0.0', description: 'CloudRetail stock levels and reservations' });
  const admin = [auth.authenticate, requireRole('admin')];

  api.route(
    { method: 'get', path: '/inventory/:productId', operationId: 'getStock', summary: 'Stock level of a product (zeros when it was never stocked)', params: ProductIdParams, responses: { 200: StockLevel, 503: null } },
    async ({ params }, _req, res) => res.json(await stock.getStock(params.productId)),
  );
  api.route(
    {
      method: 'put',
      path: '/inventory/:productId', operationId: 'setStock',
      summary: 'Set the units available for sale',
      auth: 'admin',
      params: ProductIdParams,
      body: StockInput,
      responses: { 200: StockLevel, 503: null },
      before: admin,
    },
    async ({ params, body }, _req, res) => res.json(await stock.setStock(params.productId, body.available)),
  );

  api.route(
    {
      method: 'post',
      path: '/reservations', operationId: 'reserveStock',
      summary: 'Reserve every item of an order, or none (idempotent per orderId; 409 lists the short products)',
      auth: 'admin',
      body: ReservationInput,
      responses: { 201: Reservation, 200: Reservation, 409: null },
      before: admin,
    },
    async ({ body }, _req, res) => {
      const result = await reservations.reserve(body.orderId, body.items);
      if (result.outcome === 'out_of_stock') throw new AppError('conflict', 'Not enough stock for every item; nothing was reserved', result.shortages);
      res.status(result.outcome === 'reserved' ? 201 : 200).json(result.reservation);
    },
  );
  api.route(
    { method: 'get', path: '/reservations/:orderId', operationId: 'getReservation', summary: 'Get the reservation of an order', auth: 'admin', params: OrderIdParams, responses: { 200: Reservation }, before: admin },
    async ({ params }, _req, res) => res.json(await reservations.getReservation(params.orderId)),
  );
  api.route(
    {
      method: 'post',
      path: '/reservations/:orderId/commit', operationId: 'commitReservation',
      summary: 'Commit a reservation: its units are sold (idempotent). Expired: sold from available if all units are there, else 409 listing the short products; otherwise released: 409',
      auth: 'admin',
      params: OrderIdParams,
      responses: { 200: Reservation, 409: null },
      before: admin,
    },
    async ({ params }, _req, res) => res.json(await reservations.commit(params.orderId)),
  );
  api.route(
    {
      method: 'post',
      path: '/reservations/:orderId/release', operationId: 'releaseReservation',
      summary: 'Release a reservation: its units go back on sale (idempotent; 409 when committed)',
      auth: 'admin',
      params: OrderIdParams,
      body: ReleaseInput,
      responses: { 200: Reservation, 409: null },
      before: admin,
    },
    async ({ params, body }, _req, res) => res.json(await reservations.release(params.orderId, body.reason)),
  );
  return api;
}
