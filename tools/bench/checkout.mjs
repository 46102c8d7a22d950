// The checkout scenario of `npm run bench`: POST /orders at a fixed rate (open loop) against the
// real saga — product-, inventory-, payment- and order-service started from dist on fresh
// databases and one private Redis Streams namespace — and how many orders reach CONFIRMED, how
// fast (POST → CONFIRMED, from the order-service database), and whether any is lost or stuck and
// stock is conserved. Writes bench/results/checkout-<timestamp>.json and the checkout section of
// bench/results/latest.md. See README.md for the settings.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Redis from 'ioredis';
import pg from 'pg';
import { POSTGRES_URL, REDIS_URL, createDatabase, freePort, log, markdownTable, onCleanup, resultsDir, signToken, sleep, startApp, waitFor, writeLatestSection } from './common.mjs';

/** Issue 16's targets: ≥ 150 confirmed/s (stretch 200) with p99 ≤ 500 ms, ≤ 11 ms of CPU per order (stretch 8). */
const TARGETS = { confirmedPerSecond: 150, p99Ms: 500, cpuMsPerOrder: 11 };
const SERVICES = ['product-service', 'inventory-service', 'payment-service', 'order-service'];
const env = process.env;
const num = (name, fallback) => {
  const value = Number(env[name] ?? fallback);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number ≥ 0 (got ${env[name]})`);
  return value;
};

/** Settings from the environment; `quick` is the 5 s smoke run. */
function settings(quick) {
  return {
    seconds: num('BENCH_CHECKOUT_SECONDS', quick ? 5 : 30),
    warmupSeconds: num('BENCH_CHECKOUT_WARMUP_S', quick ? 1 : 3),
    drainSeconds: num('BENCH_CHECKOUT_DRAIN_S', quick ? 15 : 30),
    // Offered a little above the 150/s target: meeting it then shows in the confirmed rate itself.
    rate: num('BENCH_CHECKOUT_RATE', 170),
    maxInFlight: num('BENCH_CHECKOUT_MAX_IN_FLIGHT', 1000),
    products: num('BENCH_CHECKOUT_PRODUCTS', 20),
    customers: num('BENCH_CHECKOUT_CUSTOMERS', 20),
    stockPerProduct: num('BENCH_CHECKOUT_STOCK', 1_000_000),
    via: env.BENCH_CHECKOUT_VIA === 'gateway' ? 'gateway' : 'direct',
    replicas: replicasOf(env.BENCH_CHECKOUT_REPLICAS ?? ''),
    // Diagnostic only: `off` on the bench's own databases takes the WAL flush out of every commit (not production-like).
    synchronousCommit: env.BENCH_CHECKOUT_SYNCHRONOUS_COMMIT === 'off' ? 'off' : 'server default',
    // Passed to every saga service (all are settings the services already read).
    serviceEnv: {
      OUTBOX_POLL_MS: env.OUTBOX_POLL_MS ?? '50',
      OUTBOX_BATCH_SIZE: env.OUTBOX_BATCH_SIZE ?? '100',
      EVENT_RETRY_BACKOFF_MS: env.EVENT_RETRY_BACKOFF_MS ?? '50',
      ...Object.fromEntries(['SAGA_STEP_TIMEOUT_MS', 'OUTBOX_WAKE_DELAY_MS', 'EVENT_CONCURRENCY', 'EVENT_BATCH_LINGER_MS', 'ORDER_MAX_PENDING', 'ORDER_MIN_PENDING', 'ORDER_TARGET_LATENCY_MS', 'ORDER_PLACEMENT_CONCURRENCY', 'ORDER_PLACEMENT_QUEUE'].filter((k) => env[k]).map((k) => [k, env[k]])),
    },
  };
}

/** `inventory-service=2,order-service=2` → processes per service (1 unless named). */
function replicasOf(spec) {
  const replicas = Object.fromEntries(SERVICES.map((s) => [s, 1]));
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const [name, count] = part.split('=');
    if (!(name in replicas) || !(Number(count) >= 1)) throw new Error(`BENCH_CHECKOUT_REPLICAS: "${part}" is not <service>=<n ≥ 1> (services: ${SERVICES.join(', ')})`);
    replicas[name] = Number(count);
  }
  return replicas;
}

// --- measuring -----------------------------------------------------------------------------------

const percentile = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] : null);
const round1 = (n) => (n === null ? null : Math.round(n * 10) / 10);
function distribution(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50: round1(percentile(sorted, 50)), p95: round1(percentile(sorted, 95)), p99: round1(percentile(sorted, 99)), max: round1(sorted.at(-1) ?? null) };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return null; // gone, or not Linux
  }
}

async function redisCpuSeconds(redis) {
  const info = await redis.info('cpu');
  const value = (key) => Number(new RegExp(`${key}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return value('used_cpu_user') + value('used_cpu_sys');
}

/** CPU used by each of our processes, our databases' Postgres backends and the Redis server. */
async function cpuSnapshot({ children, admin, databases, redis }) {
  const snapshot = { at: performance.now(), bench: process.cpuUsage(), processes: {}, postgres: {}, redis: await redisCpuSeconds(redis) };
  for (const [name, child] of children) snapshot.processes[name] = cpuSeconds(child.pid);
  const { rows } = await admin.query('SELECT pid FROM pg_stat_activity WHERE datname = ANY($1)', [databases]);
  for (const { pid } of rows) snapshot.postgres[pid] = cpuSeconds(pid);
  const stats = await admin.query('SELECT datname, xact_commit::bigint AS commits FROM pg_stat_database WHERE datname = ANY($1)', [databases]);
  snapshot.commits = Object.fromEntries(stats.rows.map((r) => [r.datname, Number(r.commits)]));
  return snapshot;
}

/** CPU seconds each part used between two snapshots. */
function cpuUsed(a, b) {
  const processes = {};
  for (const [name, end] of Object.entries(b.processes)) if (end !== null && a.processes[name] !== null) processes[name] = end - a.processes[name];
  const postgres = Object.entries(b.postgres).reduce((sum, [pid, end]) => sum + (end === null ? 0 : end - (a.postgres[pid] ?? 0)), 0);
  const bench = (b.bench.user + b.bench.system - a.bench.user - a.bench.system) / 1e6;
  return { ...processes, 'postgres (our databases)': postgres, 'redis-server (all clients)': b.redis - a.redis, 'bench (load generator)': bench };
}
const mapValues = (object, fn) => Object.fromEntries(Object.entries(object).map(([key, value]) => [key, fn(value)]));

/** Each consumer group's backlog on the run's streams (XINFO GROUPS: lag = not yet delivered, pending = delivered, not acked). */
async function consumerLag(redis, prefix) {
  const lag = [];
  for (const topic of ['orders', 'inventory', 'payments']) {
    const key = `events:${prefix}${topic}`;
    const groups = await redis.call('XINFO', 'GROUPS', key).catch(() => []);
    for (const fields of groups) {
      const group = Object.fromEntries(fields.reduce((pairs, value, i) => (i % 2 ? pairs : [...pairs, [value, fields[i + 1]]]), []));
      lag.push({ stream: topic, group: String(group.name).slice(prefix.length), lag: group.lag, pending: group.pending });
    }
  }
  return lag;
}

// --- load ----------------------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** POST /orders; resolves (never rejects) with the status, the order id and when it was sent and answered. */
function postOrder(url, token, body) {
  return new Promise((resolve) => {
    const payload = JSON.stringify(body);
    const sentAt = Date.now();
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        timeout: 10_000,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), authorization: `Bearer ${token}`, 'idempotency-key': randomUUID() },
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => (data += chunk));
        res.on('end', () => {
          let id;
          try {
            id = JSON.parse(data).id;
          } catch {
            // reported through the status
          }
          resolve({ status: res.statusCode, id, sentAt, answeredAt: Date.now(), error: res.statusCode === 202 ? undefined : data.slice(0, 200) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out after 10 s')));
    req.on('error', (error) => resolve({ status: 0, sentAt, answeredAt: Date.now(), error: error.message }));
    req.end(payload);
  });
}

/** One order: one or two distinct products, one or two units each, paid with the sandbox's approved card. */
function randomOrder(productIds) {
  const first = Math.floor(Math.random() * productIds.length);
  const ids = Math.random() < 0.2 && productIds.length > 1 ? [productIds[first], productIds[(first + 1) % productIds.length]] : [productIds[first]];
  return { items: ids.map((productId) => ({ productId, quantity: 1 + Math.floor(Math.random() * 2) })), paymentMethod: { type: 'card', token: 'tok_visa' } };
}

/**
 * Open loop: order n is due at start + n / rate whatever the answers so far, so a slow system
 * meets the same arrivals (no coordinated omission). Beyond `maxInFlight` unanswered POSTs an
 * arrival is dropped and counted.
 */
async function drive({ urls, rate, seconds, maxInFlight, tokens, productIds }) {
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const startedAt = Date.now();
  const posts = [];
  const answers = [];
  let inFlight = 0;
  let dropped = 0;
  let maxLagMs = 0;
  for (let n = 0; n < total; ) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - started) * rate) / 1000) + 1);
    for (; n < due; n++) {
      maxLagMs = Math.max(maxLagMs, now - started - (n * 1000) / rate);
      if (inFlight >= maxInFlight) {
        dropped += 1;
        continue;
      }
      inFlight += 1;
      const post = postOrder(urls[n % urls.length], tokens[n % tokens.length], randomOrder(productIds)).then((answer) => {
        inFlight -= 1;
        answers.push(answer);
      });
      posts.push(post);
    }
    await sleep(1);
  }
  const endedAt = Date.now();
  await Promise.all(posts);
  return { startedAt, endedAt, answers, dropped, maxSchedulerLagMs: Math.round(maxLagMs) };
}

// --- the scenario --------------------------------------------------------------------------------

async function json(res, what) {
  const text = await res.text();
  if (!res.ok) throw new Error(`${what} failed: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Products through the catalog's admin API, each stocked with `stock` units through inventory's. */
async function seed({ productUrl, inventoryUrl, adminToken, count, stock }) {
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` };
  const ids = [];
  for (let n = 0; n < count; n++) {
    const product = await json(
      await fetch(`${productUrl}/products`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ sku: `BENCH-CHK-${Date.now()}-${n}`, name: `Bench item ${n}`, description: 'Seeded by the checkout benchmark', category: 'bench', priceCents: 1000 + n, currency: 'USD' }),
      }),
      'creating a product',
    );
    await json(await fetch(`${inventoryUrl}/inventory/${product.id}`, { method: 'PUT', headers, body: JSON.stringify({ available: stock }) }), 'stocking a product');
    ids.push(product.id);
  }
  return ids;
}

/** Waits until no order is PENDING or `seconds` pass; resolves with the count still pending. */
async function drain(orders, seconds) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const { rows } = await orders.query("SELECT count(*)::int AS pending FROM orders WHERE status = 'PENDING'");
    if (rows[0].pending === 0 || Date.now() >= deadline) return rows[0].pending;
    await sleep(250);
  }
}

/** Waits until every consumer group has read and acknowledged everything (or the deadline); resolves true when settled. */
async function settle(redis, prefix, deadline) {
  for (;;) {
    const groups = await consumerLag(redis, prefix);
    if (groups.every((g) => g.lag === 0 && g.pending === 0)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(250);
  }
}

/** Deletes the run's streams (dead letters included): only keys under its own prefix. */
async function deleteStreams(redis, prefix) {
  const keys = [];
  for (const pattern of [`events:${prefix}*`, `events:dlq.${prefix}*`]) {
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      keys.push(...found);
      cursor = next;
    } while (cursor !== '0');
  }
  if (keys.length) await redis.del(...keys);
}

export async function runCheckout({ quick = false } = {}) {
  const s = settings(quick);
  const loadAtStart = os.loadavg();
  const prefix = `bench${randomBytes(4).toString('hex')}.`;
  log(`checkout: ${s.rate} orders/s for ${s.seconds} s (after ${s.warmupSeconds} s warm-up), ${s.via === 'gateway' ? 'through api-gateway' : 'direct to order-service'}, topic prefix ${prefix}`);

  // Registered before anything starts, so they run after every service has stopped (cleanup is LIFO).
  const databases = {};
  for (const [service, label] of [
    ['product-service', 'chk_products'],
    ['inventory-service', 'chk_inventory'],
    ['payment-service', 'chk_payments'],
    ['order-service', 'chk_orders'],
  ]) {
    databases[service] = await createDatabase(label);
  }
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  onCleanup(() => redis.quit());
  onCleanup(() => deleteStreams(redis, prefix));
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  onCleanup(() => admin.end());
  if (s.synchronousCommit === 'off') {
    for (const url of Object.values(databases)) await admin.query(`ALTER DATABASE "${new URL(url).pathname.slice(1)}" SET synchronous_commit = off`);
  }

  // The services: one topic namespace, LOG_LEVEL=warn, production builds.
  const children = new Map();
  const urls = {};
  const replicaUrls = {};
  async function launch(service, extra = {}) {
    const count = s.replicas[service];
    for (let n = 1; n <= count; n++) {
      const port = await freePort();
      const name = count > 1 ? `${service}#${n}` : service;
      const child = startApp(service, { PORT: String(port), DATABASE_URL: databases[service], REDIS_URL, EVENT_TOPIC_PREFIX: prefix, ...s.serviceEnv, ...extra });
      children.set(name, child);
      // Replicas migrate one after the other (an advisory lock would serialise them anyway).
      await waitFor(`http://127.0.0.1:${port}/health/ready`, child, name);
      urls[service] ??= `http://127.0.0.1:${port}`;
      (replicaUrls[service] ??= []).push(`http://127.0.0.1:${port}`);
    }
  }
  await launch('product-service');
  const catalog = { PRODUCT_SERVICE_URL: urls['product-service'] };
  await Promise.all([launch('inventory-service', catalog), launch('payment-service'), launch('order-service', catalog)]);
  // Direct: POSTs go round-robin to the order-service replicas (a load balancer's job in production).
  let ordersUrls = replicaUrls['order-service'].map((url) => `${url}/orders`);
  if (s.via === 'gateway') {
    const port = await freePort();
    const gateway = startApp('api-gateway', {
      PORT: String(port),
      REDIS_URL,
      ORDER_SERVICE_URL: urls['order-service'],
      PRODUCT_SERVICE_URL: urls['product-service'],
      RATE_LIMIT_ENABLED: 'true',
      RATE_LIMIT_DEFAULT: '1000000000/60s',
      RATE_LIMIT_KEY_PREFIX: `bench:${prefix}`,
    });
    children.set('api-gateway', gateway);
    await waitFor(`http://127.0.0.1:${port}/health/ready`, gateway, 'api-gateway');
    ordersUrls = [`http://127.0.0.1:${port}/api/orders`];
  }

  const sign = (subject, role) => signToken(subject, role);
  const adminToken = sign(randomUUID(), 'admin');
  const tokens = Array.from({ length: Math.max(1, s.customers) }, () => sign(randomUUID(), 'customer'));
  const productIds = await seed({ productUrl: urls['product-service'], inventoryUrl: urls['inventory-service'], adminToken, count: Math.max(1, s.products), stock: s.stockPerProduct });
  // product-service caches reads in Redis: remove this run's entries too.
  onCleanup(async () => {
    for (const id of productIds) {
      const [, cached] = await redis.scan('0', 'MATCH', `product:${id}:*`, 'COUNT', 1000);
      await redis.del(`product:gen:${id}`, ...cached);
    }
  });
  const seededUnits = productIds.length * s.stockPerProduct;
  log(`seeded ${productIds.length} products × ${s.stockPerProduct} units, ${tokens.length} customers`);

  const db = {};
  for (const [service, key] of [
    ['order-service', 'orders'],
    ['inventory-service', 'inventory'],
    ['payment-service', 'payments'],
  ]) {
    db[key] = new pg.Client({ connectionString: databases[service] });
    await db[key].connect();
    onCleanup(() => db[key].end());
  }

  // What the system costs doing nothing (outbox polls, blocked reads, sweepers), to tell it apart from the per-order cost.
  const databaseNames = Object.values(databases).map((u) => new URL(u).pathname.slice(1));
  const idleStart = await cpuSnapshot({ children, admin, databases: databaseNames, redis });
  await sleep(3_000);
  const idleEnd = await cpuSnapshot({ children, admin, databases: databaseNames, redis });
  const idleRate = mapValues(cpuUsed(idleStart, idleEnd), (used) => used / ((idleEnd.at - idleStart.at) / 1000));
  const idleCores = mapValues(idleRate, (rate) => Math.round(rate * 100) / 100);

  const load = { urls: ordersUrls, rate: s.rate, maxInFlight: s.maxInFlight, tokens, productIds };
  if (s.warmupSeconds > 0) {
    log(`warm-up: ${s.warmupSeconds} s`);
    await drive({ ...load, seconds: s.warmupSeconds });
    await drain(db.orders, s.drainSeconds);
  }

  const cpuStart = await cpuSnapshot({ children, admin, databases: databaseNames, redis });
  const progress = setInterval(() => {
    db.orders
      .query('SELECT status, count(*)::int AS n FROM orders GROUP BY status ORDER BY status')
      .then(({ rows }) => log(`  ${rows.map((r) => `${r.status} ${r.n}`).join(', ')}`))
      .catch(() => undefined);
  }, 5_000);
  log(`measuring: ${s.seconds} s at ${s.rate} orders/s`);
  const run = await drive({ ...load, seconds: s.seconds }).finally(() => clearInterval(progress));
  const cpuEnd = await cpuSnapshot({ children, admin, databases: databaseNames, redis });
  const lagAtEnd = await consumerLag(redis, prefix);
  const loadAtEndOfWindow = os.loadavg();
  log(`load sent; draining (up to ${s.drainSeconds} s)`);
  const drainStarted = Date.now();
  const stuck = await drain(db.orders, s.drainSeconds);
  const drainMs = Date.now() - drainStarted;
  // The last OrderConfirmed events may still be on their way to inventory: the stock checks below
  // need every consumer to have caught up.
  const settled = await settle(redis, prefix, drainStarted + s.drainSeconds * 1000 + 10_000);
  const cpuSettled = await cpuSnapshot({ children, admin, databases: databaseNames, redis });

  // Every order of the window, as order-service recorded it: updated_at of a CONFIRMED order is
  // when it was confirmed (now() of the transaction that handled PaymentCaptured).
  const accepted = run.answers.filter((a) => a.status === 202 && a.id);
  const { rows: orderRows } = await db.orders.query('SELECT id, status, reason, created_at, updated_at FROM orders WHERE id = ANY($1::uuid[])', [accepted.map((a) => a.id)]);
  const byId = new Map(orderRows.map((r) => [r.id, r]));
  const confirmedMs = [];
  const perSecond = Array.from({ length: Math.ceil(s.seconds) }, () => 0);
  const counts = { CONFIRMED: 0, CANCELLED: 0, PENDING: 0, REFUNDED: 0 };
  const cancelReasons = {};
  let confirmedInWindow = 0;
  let lost = 0;
  for (const answer of accepted) {
    const row = byId.get(answer.id);
    if (!row) {
      lost += 1; // accepted (202) but not in the database: must never happen
      continue;
    }
    counts[row.status] += 1;
    if (row.status === 'CANCELLED') cancelReasons[row.reason] = (cancelReasons[row.reason] ?? 0) + 1;
    if (row.status !== 'CONFIRMED') continue;
    const at = row.updated_at.getTime();
    confirmedMs.push(at - answer.sentAt);
    if (at >= run.startedAt && at < run.endedAt) {
      confirmedInWindow += 1;
      perSecond[Math.floor((at - run.startedAt) / 1000)] += 1;
    }
  }
  const windowSeconds = (run.endedAt - run.startedAt) / 1000;
  // 503 is order-service shedding load (ORDER_PLACEMENT_*): answered at once with retry-after, nothing written.
  const shed = run.answers.filter((a) => a.status === 503).length;
  const failedPosts = run.answers.filter((a) => a.status !== 202 && a.status !== 503);
  const postErrors = {};
  for (const a of failedPosts) postErrors[`${a.status} ${a.error ?? ''}`.trim().slice(0, 120)] = (postErrors[`${a.status} ${a.error ?? ''}`.trim().slice(0, 120)] ?? 0) + 1;

  // Consistency after the drain, over the whole run (warm-up included): stock conserved, sold
  // units = units of confirmed orders, one capture per confirmed order, nothing dead-lettered.
  // One statement per database, so each sum comes from one snapshot.
  const [{ rows: stockRows }, { rows: confirmedUnitRows }, { rows: allOrderRows }, { rows: paymentRows }] = await Promise.all([
    db.inventory.query(
      `SELECT (SELECT coalesce(sum(available), 0) FROM stock WHERE product_id = ANY($1::uuid[]))::bigint AS available,
              (SELECT coalesce(sum(reserved), 0) FROM stock WHERE product_id = ANY($1::uuid[]))::bigint AS reserved,
              (SELECT coalesce(sum(ri.quantity), 0) FROM reservation_items ri JOIN reservations r USING (order_id) WHERE r.status = 'COMMITTED')::bigint AS sold`,
      [productIds],
    ),
    db.orders.query("SELECT coalesce(sum(i.quantity), 0)::bigint AS units FROM order_items i JOIN orders o ON o.id = i.order_id WHERE o.status = 'CONFIRMED'"),
    db.orders.query("SELECT count(*)::int AS total, count(*) FILTER (WHERE status = 'PENDING')::int AS pending, count(*) FILTER (WHERE status = 'CONFIRMED')::int AS confirmed FROM orders"),
    db.payments.query("SELECT count(*) FILTER (WHERE status = 'CAPTURED')::int AS captured FROM payments"),
  ]);
  const available = Number(stockRows[0].available);
  const reserved = Number(stockRows[0].reserved);
  const sold = Number(stockRows[0].sold);
  const deadLetters = {};
  for (const group of ['order-service', 'inventory-service', 'payment-service']) deadLetters[group] = await redis.xlen(`events:dlq.${prefix}${group}`);
  const checks = {
    stockConserved: available + reserved + sold === seededUnits,
    soldEqualsConfirmedUnits: sold === Number(confirmedUnitRows[0].units),
    oneCapturePerConfirmedOrder: paymentRows[0].captured === allOrderRows[0].confirmed,
    noDeadLetters: Object.values(deadLetters).every((n) => n === 0),
  };

  const latency = distribution(confirmedMs);
  const confirmedPerSecond = Math.round((confirmedInWindow / windowSeconds) * 10) / 10;
  const met = {
    throughput: confirmedPerSecond >= TARGETS.confirmedPerSecond,
    p99: latency.p99 !== null && latency.p99 <= TARGETS.p99Ms,
    noLostOrStuck: lost === 0 && stuck === 0 && counts.PENDING === 0 && failedPosts.length === 0 && run.dropped === 0,
    consistent: Object.values(checks).every(Boolean),
  };
  // Cores' worth of CPU during the window (1.0 = one core busy all the time), and what the window's
  // orders cost from its start until every consumer had caught up.
  const cpu = mapValues(cpuUsed(cpuStart, cpuEnd), (used) => Math.round((used / ((cpuEnd.at - cpuStart.at) / 1000)) * 100) / 100);
  const settledSeconds = (cpuSettled.at - cpuStart.at) / 1000;
  const cpuPerOrderMs = Object.fromEntries(
    Object.entries(cpuUsed(cpuStart, cpuSettled)).map(([name, used]) => [name, Math.round((Math.max(0, used - (idleRate[name] ?? 0) * settledSeconds) * 10_000) / Math.max(1, accepted.length)) / 10]),
  );
  // Postgres commits per order and database (each one a WAL flush with synchronous_commit on), idle rate subtracted.
  const serviceOf = Object.fromEntries(Object.entries(databases).map(([service, url]) => [new URL(url).pathname.slice(1), service]));
  const commitsPerOrder = Object.fromEntries(
    Object.entries(cpuSettled.commits).map(([db, end]) => {
      const idle = ((idleEnd.commits[db] - idleStart.commits[db]) / ((idleEnd.at - idleStart.at) / 1000)) * settledSeconds;
      return [serviceOf[db], Math.round((Math.max(0, end - cpuStart.commits[db] - idle) / Math.max(1, accepted.length)) * 10) / 10];
    }),
  );
  cpuPerOrderMs.total = Math.round(Object.values(cpuPerOrderMs).reduce((a, b) => a + b, 0) * 10) / 10;
  const at = new Date();
  const result = {
    scenario: 'checkout',
    at: at.toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEndOfLoad: loadAtEndOfWindow, loadAverageAtEnd: os.loadavg() },
    settings: { ...s, quick, path: s.via === 'gateway' ? 'bench → api-gateway → order-service' : 'bench → order-service', topicPrefix: prefix, logLevel: 'warn' },
    window: { seconds: windowSeconds, offeredPerSecond: s.rate, sent: run.answers.length, dropped: run.dropped, maxSchedulerLagMs: run.maxSchedulerLagMs },
    orders: { placed: accepted.length, shed, postFailures: failedPosts.length, postErrors, confirmed: counts.CONFIRMED, cancelled: counts.CANCELLED, cancelReasons, stuck, lost, confirmedInWindow, drainMs },
    confirmedPerSecond,
    confirmedPerWindowSecond: perSecond,
    timeToConfirmedMs: latency,
    postLatencyMs: distribution(accepted.map((a) => a.answeredAt - a.sentAt)),
    consistency: { seededUnits, available, reserved, sold, confirmedUnits: Number(confirmedUnitRows[0].units), captured: paymentRows[0].captured, ordersInRun: allOrderRows[0], deadLetters, checks },
    consumerLagAtEndOfLoad: lagAtEnd,
    cpuCoresIdle: idleCores,
    cpuCoresDuringWindow: cpu,
    cpuMsPerOrder: cpuPerOrderMs,
    postgresCommitsPerOrder: commitsPerOrder,
    settled,
    targets: TARGETS,
    met,
  };

  const stamp = at.toISOString().replace(/[:.]/g, '-');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, `checkout-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  const yes = (ok) => (ok ? 'met' : 'NOT met');
  const md = `# Benchmark: checkout saga (${result.at})

POST /orders ${s.via === 'gateway' ? 'through api-gateway' : 'direct to order-service'} at ${s.rate} orders/s (open loop) for ${s.seconds} s after ${s.warmupSeconds} s warm-up; product-, inventory-, payment- and order-service from dist (${Object.entries(s.replicas)
    .map(([name, n]) => `${name} ×${n}`)
    .join(', ')}), Redis Streams, LOG_LEVEL=warn, ${Object.entries(s.serviceEnv).map(([k, v]) => `${k}=${v}`).join(', ')}${s.synchronousCommit === 'off' ? ', **synchronous_commit=off (diagnostic)**' : ''}; ${result.machine.cpus} CPUs (${result.machine.cpuModel}), Node ${process.version}.
Load generator, Postgres, Redis and the services share the machine; 1-min load average ${loadAtStart[0].toFixed(1)} at start, ${loadAtEndOfWindow[0].toFixed(1)} at the end of the load, ${result.machine.loadAverageAtEnd[0].toFixed(1)} at the end.

${markdownTable(
  ['placed', 'confirmed', 'cancelled', 'stuck', 'shed (503)', 'POST errors', 'confirmed/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
  [[accepted.length, counts.CONFIRMED, counts.CANCELLED, stuck, shed, failedPosts.length + run.dropped, confirmedPerSecond, latency.p50, latency.p95, latency.p99, latency.max]],
)}

- confirmed/s: orders confirmed inside the ${windowSeconds.toFixed(1)} s window ÷ its length (target ≥ ${TARGETS.confirmedPerSecond}: ${yes(met.throughput)}); per second: ${perSecond.join(' ')}
- POST → CONFIRMED p99: **${latency.p99} ms** (target ≤ ${TARGETS.p99Ms} ms: ${yes(met.p99)}); POST answered in p50 ${result.postLatencyMs.p50} ms, p99 ${result.postLatencyMs.p99} ms
- lost or stuck: ${lost} lost, ${stuck} still PENDING ${(drainMs / 1000).toFixed(1)} s after the load${Object.keys(cancelReasons).length ? `, cancelled: ${JSON.stringify(cancelReasons)}` : ''} (${yes(met.noLostOrStuck)})
- stock: ${available} available + ${reserved} reserved + ${sold} sold = ${available + reserved + sold} of ${seededUnits} seeded; sold = units of confirmed orders: ${checks.soldEqualsConfirmedUnits ? 'yes' : 'NO'}; captures = confirmed orders: ${checks.oneCapturePerConfirmedOrder ? 'yes' : 'NO'}; dead letters: ${Object.values(deadLetters).reduce((a, b) => a + b, 0)} (${yes(met.consistent)})
- CPU during the window (cores): ${Object.entries(cpu)
    .map(([name, cores]) => `${name} ${cores}`)
    .join(', ')}
- CPU when idle (cores): ${Object.entries(idleCores)
    .map(([name, cores]) => `${name} ${cores}`)
    .join(', ')}
- CPU per order (ms, from the window's start until every consumer caught up, idle cost subtracted${settled ? '' : ' — NOT caught up within the drain time'}; target total ≤ ${TARGETS.cpuMsPerOrder}: ${yes(cpuPerOrderMs.total <= TARGETS.cpuMsPerOrder)}): ${Object.entries(cpuPerOrderMs)
    .map(([name, ms]) => `${name} ${ms}`)
    .join(', ')}
- Postgres commits per order: ${Object.entries(commitsPerOrder)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ')}
- consumer backlog at the end of the load: ${lagAtEnd.map((g) => `${g.group} on ${g.stream} ${g.lag ?? '?'} unread + ${g.pending} unacked`).join(', ')}
`;
  writeLatestSection('checkout', md);
  process.stdout.write(`\n${md}\n`);
  log(`wrote bench/results/checkout-${stamp}.json and bench/results/latest.md`);
  return result;
}
