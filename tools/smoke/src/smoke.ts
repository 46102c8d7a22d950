/**
 * The smoke suite: what a client does, through the gateway, against a running platform.
 *
 * full (local, compose, staging): register → log in → (admin) a product with stock → order with
 * tok_visa → the SSE stream delivers CONFIRMED → order with tok_chargeDeclined → CANCELLED
 * (payment_declined), stock released → (admin) refund → REFUNDED, stock back where it started.
 * read-only (production): the catalog answers, a protected route refuses an anonymous client,
 * the API description is served. Nothing is written.
 */
import { randomUUID } from 'node:crypto';

export interface SmokeOptions {
  baseUrl: string;
  mode: 'full' | 'read-only';
  adminEmail?: string;
  adminPassword?: string;
  /** Deadline for each wait (a final status, a stream event). */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface StepResult {
  step: string;
  ms: number;
}

export class SmokeFailure extends Error {
  constructor(
    readonly step: string,
    message: string,
  ) {
    super(`${step}: ${message}`);
  }
}

type Json = Record<string, unknown>;
interface Answer {
  status: number;
  body: Json;
  headers: Headers;
}

/** One client of the public API: JSON in and out, every answer checked against the envelope rule. */
function client(baseUrl: string, timeoutMs: number) {
  return async function call(method: string, path: string, { token, body, headers = {} }: { token?: string; body?: unknown; headers?: Record<string, string> } = {}): Promise<Answer> {
    const res = await fetch(new URL(path, baseUrl), {
      method,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: Json;
    try {
      parsed = text ? (JSON.parse(text) as Json) : {};
    } catch {
      throw new Error(`${method} ${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
}

function expectStatus(answer: Answer, expected: number, what: string): Json {
  if (answer.status !== expected) throw new Error(`${what}: expected ${expected}, got ${answer.status} ${JSON.stringify(answer.body).slice(0, 300)}`);
  return answer.body;
}

/**
 * Reads the order's Server-Sent Events until one carries a final status; resolves with the
 * statuses in the order they arrived.
 */
async function streamUntilFinal(baseUrl: string, orderId: string, token: string, timeoutMs: number): Promise<string[]> {
  const res = await fetch(new URL(`/api/orders/${orderId}/events`, baseUrl), {
    headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (res.status !== 200 || !res.body) throw new Error(`the event stream answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  if (!res.headers.get('content-type')?.startsWith('text/event-stream')) throw new Error(`the event stream's content-type is ${res.headers.get('content-type')}`);
  const statuses: string[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame
        .split('\n')
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).trim())
        .join('\n');
      if (!data) continue;
      const status = (JSON.parse(data) as { status: string }).status;
      statuses.push(status);
      if (['CONFIRMED', 'CANCELLED', 'REFUNDED'].includes(status)) return statuses;
    }
  }
  throw new Error(`the stream ended without a final status (saw ${statuses.join(' → ') || 'nothing'})`);
}

async function waitForStatus(call: ReturnType<typeof client>, orderId: string, token: string, wanted: string, timeoutMs: number): Promise<Json> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const order = expectStatus(await call('GET', `/api/orders/${orderId}`, { token }), 200, 'GET /api/orders/:id');
    if (order.status === wanted) return order;
    if (Date.now() > deadline) throw new Error(`order ${orderId} is ${String(order.status)}, not ${wanted}, after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Runs the suite; resolves with the steps that passed, rejects with a {@link SmokeFailure}. */
export async function runSmoke({ baseUrl, mode, adminEmail, adminPassword, timeoutMs = 20_000, log = () => undefined }: SmokeOptions): Promise<StepResult[]> {
  const call = client(baseUrl, timeoutMs);
  const results: StepResult[] = [];
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      const value = await fn();
      const ms = Math.round(performance.now() - started);
      results.push({ step: name, ms });
      log(`  ✓ ${name} (${ms} ms)`);
      return value;
    } catch (error) {
      log(`  ✗ ${name}`);
      throw new SmokeFailure(name, error instanceof Error ? error.message : String(error));
    }
  };

  await step('the catalog answers', async () => {
    const list = expectStatus(await call('GET', '/api/products?limit=5'), 200, 'GET /api/products');
    if (!Array.isArray(list.items)) throw new Error('the list has no items array');
  });
  await step('a protected route refuses an anonymous client with the error envelope', async () => {
    const answer = await call('GET', '/api/users/me');
    const error = expectStatus(answer, 401, 'GET /api/users/me').error as Json | undefined;
    if (typeof error?.code !== 'string') throw new Error(`no error envelope: ${JSON.stringify(answer.body)}`);
    if (!answer.headers.get('x-request-id')) throw new Error('no x-request-id header');
  });
  if (mode === 'read-only') return results;

  if (!adminEmail || !adminPassword) throw new SmokeFailure('admin credentials', 'the full suite needs SMOKE_ADMIN_EMAIL and SMOKE_ADMIN_PASSWORD');
  const email = `smoke-${randomUUID()}@example.com`;
  const password = `Smoke-${randomUUID()}`;
  await step('a customer registers', async () => expectStatus(await call('POST', '/api/auth/register', { body: { email, password, name: 'Smoke Test' } }), 201, 'POST /api/auth/register'));
  const customer = await step('the customer logs in', async () => String(expectStatus(await call('POST', '/api/auth/login', { body: { email, password } }), 200, 'POST /api/auth/login').token));
  const admin = await step('the admin logs in', async () => String(expectStatus(await call('POST', '/api/auth/login', { body: { email: adminEmail, password: adminPassword } }), 200, 'admin login').token));

  const product = await step('the admin adds a product with 5 in stock', async () => {
    const created = expectStatus(await call('POST', '/api/products', { token: admin, body: { sku: `SMOKE-${randomUUID()}`, name: 'Smoke test widget', category: 'smoke', priceCents: 1234 } }), 201, 'POST /api/products');
    const id = String(created.id);
    // The inventory service learns of the product from the catalog; retry until it does.
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const answer = await call('PUT', `/api/inventory/${id}`, { token: admin, body: { available: 5 } });
      if (answer.status === 200) return id;
      if (answer.status !== 404 || Date.now() > deadline) expectStatus(answer, 200, 'PUT /api/inventory/:id');
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  const stock = async () => expectStatus(await call('GET', `/api/inventory/${product}`), 200, 'GET /api/inventory/:id');
  const order = (token: string) =>
    call('POST', '/api/orders', { token: customer, headers: { 'idempotency-key': randomUUID() }, body: { items: [{ productId: product, quantity: 2 }], paymentMethod: { type: 'card', token } } });

  const confirmed = await step('an order paid with tok_visa is CONFIRMED, delivered by the SSE stream', async () => {
    const placed = expectStatus(await order('tok_visa'), 202, 'POST /api/orders');
    if (placed.status !== 'PENDING') throw new Error(`a new order is ${String(placed.status)}, not PENDING`);
    if (placed.totalCents !== 2468) throw new Error(`the total is ${String(placed.totalCents)}, not 2 × 1234 from the catalog`);
    const statuses = await streamUntilFinal(baseUrl, String(placed.id), customer, timeoutMs);
    if (statuses.at(-1) !== 'CONFIRMED') throw new Error(`the stream ended with ${statuses.join(' → ')}`);
    const after = await stock();
    if (after.available !== 3) throw new Error(`available is ${String(after.available)} after selling 2 of 5`);
    return String(placed.id);
  });
  await step('an order paid with tok_chargeDeclined is CANCELLED (payment_declined) and its stock released', async () => {
    const placed = expectStatus(await order('tok_chargeDeclined'), 202, 'POST /api/orders');
    const statuses = await streamUntilFinal(baseUrl, String(placed.id), customer, timeoutMs);
    if (statuses.at(-1) !== 'CANCELLED') throw new Error(`the stream ended with ${statuses.join(' → ')}`);
    const final = await waitForStatus(call, String(placed.id), customer, 'CANCELLED', timeoutMs);
    if (final.reason !== 'payment_declined') throw new Error(`reason is ${String(final.reason)}`);
    const deadline = Date.now() + timeoutMs;
    while ((await stock()).available !== 3 || (await stock()).reserved !== 0) {
      if (Date.now() > deadline) throw new Error(`stock not released: ${JSON.stringify(await stock())}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  await step('the admin refunds the confirmed order: REFUNDED, and the stock comes back', async () => {
    const payments = expectStatus(await call('GET', `/api/payments?orderId=${confirmed}`, { token: customer }), 200, 'GET /api/payments');
    const payment = (payments.items as Json[] | undefined)?.[0] ?? (Array.isArray(payments) ? (payments as Json[])[0] : undefined);
    if (!payment) throw new Error(`no payment for order ${confirmed}: ${JSON.stringify(payments)}`);
    const refunded = expectStatus(await call('POST', `/api/payments/${String(payment.id)}/refund`, { token: admin }), 200, 'POST /api/payments/:id/refund');
    if (refunded.status !== 'REFUNDED') throw new Error(`the payment is ${String(refunded.status)}`);
    await waitForStatus(call, confirmed, customer, 'REFUNDED', timeoutMs);
    const deadline = Date.now() + timeoutMs;
    while ((await stock()).available !== 5) {
      if (Date.now() > deadline) throw new Error(`stock did not come back: ${JSON.stringify(await stock())}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  await step('the admin removes the smoke product from the catalog', async () => {
    expectStatus(await call('DELETE', `/api/products/${product}`, { token: admin }), 204, 'DELETE /api/products/:id');
  });
  return results;
}
