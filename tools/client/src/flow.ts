import { randomUUID } from 'node:crypto';
import { type CloudRetailClient, type StatusEvent, bearer, orderEvents } from './client';

export interface JourneyOptions {
  client: CloudRetailClient;
  baseUrl: string;
  /** An admin account (for the refund). */
  admin: { email: string; password: string };
  /** Narration of each step. */
  log?: (line: string) => void;
  /** How long to wait for the order to become final. */
  timeoutMs?: number;
}

async function eventually<T>(timeoutMs: number, attempt: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await attempt();
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`nothing new within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The body of an expected answer; otherwise fails with what the API answered instead. */
function expectOk<T>(step: string, { data, error, response }: { data?: T; error?: unknown; response: Response }, expected = 200): T {
  if (response.status !== expected || data === undefined) throw new Error(`${step}: expected HTTP ${expected}, got ${response.status} ${JSON.stringify(error ?? data)}`);
  return data;
}

/**
 * A customer's journey through the public API: register, browse the catalog, order something in
 * stock, follow the order's live status to CONFIRMED, and (as an admin) refund it; the refund is
 * seen on the order's stream too. Returns what happened; throws on the first unexpected answer.
 */
export async function customerJourney({ client, baseUrl, admin, log = () => undefined, timeoutMs = 30_000 }: JourneyOptions) {
  const email = `demo-${randomUUID().slice(0, 8)}@example.com`;
  const registered = expectOk('register', await client.POST('/api/auth/register', { body: { email, password: 'correct horse battery', name: 'Demo Customer' } }), 201);
  const token = registered.token;
  log(`registered ${email} (user ${registered.user.id})`);
  expectOk('profile', await client.GET('/api/users/me', { headers: bearer(token) }));

  const catalog = expectOk('browse', await client.GET('/api/products', { params: { query: { page: 1, limit: 20 } } }));
  log(`browsed the catalog: ${catalog.total} products`);
  let chosen: { id: string; name: string; priceCents: number } | undefined;
  for (const product of catalog.items) {
    const stock = expectOk('stock', await client.GET('/api/inventory/{productId}', { params: { path: { productId: product.id } } }));
    if (stock.available > 0) {
      chosen = product;
      log(`${product.name}: ${stock.available} in stock at ${(product.priceCents / 100).toFixed(2)}`);
      break;
    }
  }
  if (!chosen) throw new Error('browse: no product in stock (seed the catalog: npm start does)');
  expectOk('product', await client.GET('/api/products/{id}', { params: { path: { id: chosen.id } } }));

  const placed = expectOk(
    'order',
    await client.POST('/api/orders', {
      params: { header: { 'Idempotency-Key': randomUUID() } },
      headers: bearer(token),
      body: { items: [{ productId: chosen.id, quantity: 1 }], paymentMethod: { type: 'card', token: 'tok_visa' } },
    }),
    202,
  );
  const orderId = placed.id;
  log(`ordered 1 × ${chosen.name}: order ${orderId} is ${placed.status}`);

  const live = await orderEvents(baseUrl, orderId, token, { timeoutMs, onEvent: (e) => log(`  live status: ${e.data.status}${e.data.reason ? ` (${e.data.reason})` : ''}`) });
  if (live.response.status !== 200) throw new Error(`live status: expected HTTP 200, got ${live.response.status}`);
  const final = live.events.at(-1)?.data.status;
  if (final !== 'CONFIRMED') throw new Error(`live status: the order ended ${final ?? 'without a status'}, expected CONFIRMED`);

  expectOk('order detail', await client.GET('/api/orders/{id}', { params: { path: { id: orderId } }, headers: bearer(token) }));
  expectOk('my orders', await client.GET('/api/orders', { params: { query: { page: 1, limit: 20 } }, headers: bearer(token) }));

  const adminToken = expectOk('admin login', await client.POST('/api/auth/login', { body: admin })).token;
  const payments = expectOk('payments', await client.GET('/api/payments', { params: { query: { orderId, page: 1, limit: 20 } }, headers: bearer(adminToken) }));
  const payment = payments.items[0];
  if (!payment) throw new Error(`payments: no payment for order ${orderId}`);
  log(`admin: payment ${payment.id} is ${payment.status}; refunding`);
  expectOk('refund', await client.POST('/api/payments/{id}/refund', { params: { path: { id: payment.id } }, headers: bearer(adminToken) }));
  expectOk('payment detail', await client.GET('/api/payments/{id}', { params: { path: { id: payment.id } }, headers: bearer(adminToken) }));

  // Reconnect after the last status seen, as EventSource does: the refund arrives on the stream
  // (204 while the status service has not seen it yet: the client already has the latest status).
  const afterRefund = await eventually(timeoutMs, async () => {
    const next = await orderEvents(baseUrl, orderId, token, { timeoutMs, lastEventId: live.events.at(-1)?.id, onEvent: (e) => log(`  live status: ${e.data.status}`) });
    return next.events.length ? next : undefined;
  });
  const events: StatusEvent[] = [...live.events, ...afterRefund.events];
  const last = events.at(-1)?.data.status;
  if (last !== 'REFUNDED') throw new Error(`refund: the order's stream ended at ${last}, expected REFUNDED`);
  log(`order ${orderId} is REFUNDED`);
  return { email, orderId, paymentId: payment.id, statuses: events.map((e) => e.data.status) };
}
