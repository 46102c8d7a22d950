import type { Auth } from '@cloudretail/auth';
import { identityOf, requireRole } from '@cloudretail/auth';
import { createApi } from '@cloudretail/http';
import { IdParams, Payment, PaymentDetail, PaymentList, PaymentQuery } from '../../domain/payment';
import type { PaymentUseCases } from '../../domain/payment-use-cases';

/** Payments API: owners read their own payments, admins read all and refund. */
export function paymentApi(useCases: PaymentUseCases, auth: Auth) {
  const api = createApi({ title: 'payment-service', version: '1.0.0', description: 'CloudRetail payments (the payment step of the checkout saga) and refunds' });
  const user = [auth.authenticate];
  const admin = [auth.authenticate, requireRole('admin')];

  api.route(
    { method: 'get', path: '/payments', operationId: 'listPayments', summary: "The caller's payments (admins: everyone's), newest first; filter by orderId", auth: 'user', query: PaymentQuery, responses: { 200: PaymentList }, before: user },
    async ({ query }, req, res) => res.json(await useCases.listPayments(query, identityOf(req))),
  );
  api.route(
    { method: 'get', path: '/payments/:id', operationId: 'getPayment', summary: 'A payment with its status history (owner or admin)', auth: 'user', params: IdParams, responses: { 200: PaymentDetail }, before: user },
    async ({ params }, req, res) => res.json(await useCases.getPayment(params.id, identityOf(req))),
  );
  api.route(
    {
      method: 'post',
      path: '/payments/:id/refund', operationId: 'refundPayment',
      summary: 'Refund a captured payment; the order becomes REFUNDED and its stock returns (idempotent; 409 unless captured)',
      auth: 'admin',
      params: IdParams,
      responses: { 200: Payment, 409: null },
      before: admin,
    },
    async ({ params }, _req, res) => res.json(await useCases.refund(params.id)),
  );
  return api;
}
