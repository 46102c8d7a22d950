import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';
import { TEST_POSTGRES_URL, TEST_REDIS_URL } from '@cloudretail/testing';

const root = path.resolve(__dirname, '../..');
const APP_PORTS = [8080, 3001, 3002, 3003, 3004, 3005, 3006];

/** Its build is an Nx run of its own (the builds ran first: dependsOn ^build). */
function nestedNxEnv(): NodeJS.ProcessEnv {
  const { NX_INVOCATION_ROOT_PID: _root, ...env } = process.env;
  return env;
}

interface Platform {
  offset: number;
  prefix: string;
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
  url: (port: number, p: string) => string;
}

/** `npm start` as a developer runs it, with its own ports and database/Redis prefix. */
function launch(offset: number, prefix: string): Platform {
  const child = spawn(process.execPath, ['tools/scripts/start.mjs'], {
    cwd: root,
    env: {
      ...nestedNxEnv(),
      START_PORT_OFFSET: String(offset),
      START_DATABASE_PREFIX: prefix,
      POSTGRES_URL: TEST_POSTGRES_URL,
      REDIS_URL: TEST_REDIS_URL,
      ADMIN_EMAIL: 'admin@start.test',
      ADMIN_PASSWORD: 'start-test-password',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { offset, prefix, child, output: () => output, exit, url: (port, p) => `http://127.0.0.1:${port + offset}${p}` };
}

async function untilUp(platform: Platform, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!platform.output().includes('CloudRetail is up')) {
    if (platform.child.exitCode !== null || Date.now() > deadline) throw new Error(`npm start did not come up:\n${platform.output().slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// Gateways on 29080 and 30080, services on 24001–24006 and 25001–25006: beside a developer's own `npm start`.
const prefixA = `start_${process.pid}_a_`;
const prefixB = `start_${process.pid}_b_`;
const prefixC = `start_${process.pid}_c_`;
let a: Platform;
let b: Platform;
let redis: Redis;

async function dropDatabases() {
  const admin = new Client({ connectionString: TEST_POSTGRES_URL });
  await admin.connect();
  try {
    const { rows } = await admin.query('SELECT datname FROM pg_database WHERE datname LIKE $1', [`start_${process.pid}_%`]);
    for (const { datname } of rows) await admin.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL);
  a = launch(21000, prefixA);
  await untilUp(a, 240_000);
  b = launch(22000, prefixB); // after A: the builds are Nx runs that must not overlap
  await untilUp(b, 120_000);
}, 380_000);

/** Ctrl-C, so that start.mjs stops its apps; SIGKILL would leave them running, holding the ports. */
async function stop(platform: Platform | undefined) {
  if (!platform || platform.child.exitCode !== null) return;
  platform.child.kill('SIGINT');
  const stopped = await Promise.race([platform.exit.then(() => true), new Promise((r) => setTimeout(() => r(false), 30_000))]);
  if (!stopped) platform.child.kill('SIGKILL');
}

afterAll(async () => {
  await Promise.all([stop(a), stop(b)]);
  await dropDatabases();
  for (const prefix of [prefixA, prefixB]) {
    const keys = [...(await redis.keys(`${prefix}*`)), ...(await redis.keys(`events:${prefix}*`)), ...(await redis.keys(`events:dlq.${prefix}*`))];
    if (keys.length) await redis.del(...keys);
  }
  redis.disconnect();
  for (const prefix of [prefixA, prefixB, prefixC]) rmSync(path.join(root, '.data', `${prefix}jwt-private.pem`), { force: true });
}, 60_000);

const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** A new customer on `platform` places an order for one seeded product, and follows it live. */
async function checkout(platform: Platform) {
  const registered = await fetch(platform.url(8080, '/api/auth/register'), json({ email: `c-${randomUUID()}@start.test`, password: 'customer-password', name: 'Customer' }));
  expect(registered.status).toBe(201);
  const { token } = (await registered.json()) as { token: string };
  const auth = { authorization: `Bearer ${token}` };
  const { items } = (await (await fetch(platform.url(8080, '/api/products?limit=1'))).json()) as { items: { id: string }[] };

  const placed = await fetch(platform.url(8080, '/api/orders'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID(), ...auth },
    body: JSON.stringify({ items: [{ productId: items[0].id, quantity: 1 }], paymentMethod: { type: 'card', token: 'tok_visa' } }),
  });
  expect(placed.status).toBe(202);
  const order = (await placed.json()) as { id: string };
  // The client's natural next call, at once: the live status, which ends at the final status.
  const stream = await fetch(platform.url(8080, `/api/orders/${order.id}/events`), { headers: { ...auth, accept: 'text/event-stream' }, signal: AbortSignal.timeout(30_000) });
  expect(stream.status).toBe(200);
  const statuses = [...(await stream.text()).matchAll(/"status":"(\w+)"/g)].map((m) => m[1]);
  return { orderId: order.id, statuses };
}

/** Order ids in the entries of one platform's `orders` stream. */
async function ordersOnStream(prefix: string) {
  const entries = await redis.xrange(`events:${prefix}orders`, '-', '+');
  return new Set(entries.map(([, fields]) => (JSON.parse(fields[fields.indexOf('envelope') + 1]) as { aggregateId: string }).aggregateId));
}

describe('npm start', () => {
  it('brings up every app ready, seeds the demo catalog, creates the admin and prints the gateway URL', async () => {
    expect(a.output()).toContain(`CloudRetail is up: http://localhost:${8080 + a.offset}`);
    for (const port of APP_PORTS) {
      expect({ port, status: (await fetch(a.url(port, '/health/ready'))).status }).toEqual({ port, status: 200 });
    }
    const products = (await (await fetch(a.url(8080, '/api/products'))).json()) as { total: number };
    expect(products.total).toBe(5);
    const login = await fetch(a.url(8080, '/api/auth/login'), json({ email: 'admin@start.test', password: 'start-test-password' }));
    expect(login.status).toBe(200);
    expect(((await login.json()) as { user: { role: string } }).user.role).toBe('admin');
  });

  it('prints a short line per app with its ready time and one line when the platform is up, not the apps’ JSON start-up logs', () => {
    const output = a.output();
    for (const app of ['user-service', 'product-service', 'inventory-service', 'payment-service', 'order-service', 'event-bus', 'api-gateway']) {
      expect(output).toMatch(new RegExp(`✓\\x1b\\[0m ${app} +ready in \\d+\\.\\d s`));
    }
    expect(output).toMatch(/CloudRetail is up: .*— 7 apps in \d+\.\d s/);
    expect(output).not.toContain('{"level"');
    expect(output).not.toMatch(/WARN|ERROR/);
  });

  it('when two platforms run side by side, then an order on each confirms and neither consumes the other’s events', async () => {
    const [onA, onB] = await Promise.all([checkout(a), checkout(b)]);

    // The stream starts at the current status: PENDING, unless the saga was already done by then.
    for (const { statuses } of [onA, onB]) expect(['PENDING,CONFIRMED', 'CONFIRMED']).toContain(statuses.join());
    const [streamA, streamB] = [await ordersOnStream(prefixA), await ordersOnStream(prefixB)];
    expect([streamA.has(onA.orderId), streamA.has(onB.orderId)]).toEqual([true, false]);
    expect([streamB.has(onB.orderId), streamB.has(onA.orderId)]).toEqual([true, false]);
    for (const prefix of [prefixA, prefixB]) {
      const groups = ((await redis.xinfo('GROUPS', `events:${prefix}orders`)) as unknown[][]).map((g) => String(g[1]));
      expect(groups.length).toBeGreaterThan(0);
      expect(groups.filter((g) => !g.startsWith(prefix))).toEqual([]);
      // The gateway's rate-limit counters and the catalog cache are the platform's own too.
      expect((await redis.keys(`${prefix}ratelimit:gateway:*`)).length).toBeGreaterThan(0);
      expect((await redis.keys(`${prefix}product*`)).length).toBeGreaterThan(0);
    }
  }, 60_000);

  it('when its ports are taken by a running platform, then npm start exits non-zero naming the busy port and what to do', async () => {
    const second = launch(a.offset, prefixC);

    expect(await second.exit).toBe(1);
    expect(second.output()).toContain(`port ${3001 + a.offset} (user-service) is already in use`);
    expect(second.output()).toContain('START_PORT_OFFSET=');
    expect(second.output()).not.toContain('CloudRetail is up');
    expect((await fetch(a.url(8080, '/health/ready'))).status).toBe(200); // the running one is untouched
  }, 60_000);

  it('when interrupted (Ctrl-C), then every app drains and the process exits 0', async () => {
    a.child.kill('SIGINT');
    b.child.kill('SIGINT');
    expect(await a.exit).toBe(0);
    expect(await b.exit).toBe(0);
    expect(a.output()).toContain('[start]\x1b[0m stopped');
    await expect(fetch(a.url(8080, '/health/live'))).rejects.toThrow();
  }, 60_000);
});
