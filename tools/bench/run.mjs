#!/usr/bin/env node
// `npm run bench`: GET /api/products/:id through the gateway (JWT verification and rate limiting
// on), directly against product-service, and through nginx, in one run on one machine. Builds the
// two apps, starts them from dist against the default Postgres and Redis (a fresh bench database),
// seeds a product, drives each target with autocannon, prints a table and writes
// bench/results/<timestamp>.json and bench/results/latest.md. Stops by itself.
//
// Env: BENCH_DURATION_S (10), BENCH_WARMUP_S (3), BENCH_CONNECTIONS (50), BENCH_ROUNDS (2), POSTGRES_URL, REDIS_URL,
// BENCH_SKIP_BUILD=1 to reuse dist/.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import jwt from 'jsonwebtoken';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const resultsDir = path.join(root, 'bench/results');
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const POSTGRES_URL = process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const JWT_SECRET = randomBytes(24).toString('hex');
const TARGETS = { throughput: 0.4, p99OverheadMs: 5 };

const log = (msg) => process.stdout.write(`[bench] ${msg}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const cleanups = [];
async function cleanup() {
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch (error) {
      log(`cleanup: ${error.message}`);
    }
  }
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => cleanup().then(() => process.exit(130)));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function reachable(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => (socket.destroy(), resolve(true)));
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.on('error', () => resolve(false));
  });
}

async function waitFor(url, child, name, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    const res = await fetch(url).catch(() => undefined);
    if (res?.ok) return;
    await sleep(200);
  }
  throw new Error(`${name} not ready at ${url} within ${timeoutMs / 1000}s`);
}

/** Starts a built app from dist; its stderr and warn-level logs are shown. */
function startApp(app, env) {
  const child = spawn(process.execPath, ['main.js'], {
    cwd: path.join(root, 'dist/apps', app),
    env: { PATH: process.env.PATH, NODE_ENV: 'production', LOG_LEVEL: 'warn', SHUTDOWN_DELAY_MS: '0', SHUTDOWN_TIMEOUT_MS: '3000', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk) => process.stdout.write(`  ${app} | ${chunk}`));
  cleanups.push(() => stopChild(child));
  return child;
}

function stopChild(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => (clearTimeout(kill), resolve()));
    child.kill(signal);
  });
}

async function createDatabase() {
  const name = `bench_${Date.now()}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  cleanups.push(async () => {
    const c = new pg.Client({ connectionString: POSTGRES_URL });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.end();
  });
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function startNginx(upstreamPort, port) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cloudretail-bench-nginx-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, sub));
  // One worker, like the single gateway process; keep-alive to the upstream, no access log.
  const conf = `
worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream product { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location /api/products/ {
      proxy_pass http://product/products/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`;
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const child = spawn('nginx', ['-c', file, '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.on('data', (chunk) => process.stdout.write(`  nginx | ${chunk}`));
  cleanups.push(() => stopChild(child, 'SIGQUIT'));
  return child;
}

function load(url, headers, seconds) {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections: CONNECTIONS, duration: seconds, headers }, (error, result) => (error ? reject(error) : resolve(result)));
  });
}

async function measure(name, url, headers, round) {
  log(`${name} (round ${round}): warm-up ${WARMUP_S}s, then ${DURATION_S}s at ${CONNECTIONS} connections → ${url}`);
  await load(url, headers, WARMUP_S);
  await sleep(500);
  const r = await load(url, headers, DURATION_S);
  return {
    requestsPerSecond: r.requests.average,
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: r.latency.mean },
    requests: r.requests.total,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}

/** Rounds of one target combined: mean throughput and latency percentiles, summed counts. */
function combine(name, url, rounds) {
  const mean = (pick) => Number((rounds.reduce((sum, r) => sum + pick(r), 0) / rounds.length).toFixed(2));
  return {
    target: name,
    url,
    requestsPerSecond: Math.round(mean((r) => r.requestsPerSecond)),
    latencyMs: { p50: mean((r) => r.latencyMs.p50), p90: mean((r) => r.latencyMs.p90), p99: mean((r) => r.latencyMs.p99), max: Math.max(...rounds.map((r) => r.latencyMs.max)) },
    requests: rounds.reduce((sum, r) => sum + r.requests, 0),
    errors: rounds.reduce((sum, r) => sum + r.errors, 0),
    non2xx: rounds.reduce((sum, r) => sum + r.non2xx, 0),
    rounds,
  };
}

function table(rows) {
  const header = ['target', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'non-2xx'];
  const lines = rows.map((r) => [r.target, r.requestsPerSecond, r.latencyMs.p50, r.latencyMs.p99, r.errors, r.non2xx].map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

async function main() {
  for (const [what, url] of [
    ['Postgres', POSTGRES_URL],
    ['Redis', REDIS_URL],
  ]) {
    if (!(await reachable(url))) throw new Error(`${what} is not reachable at ${url}`);
  }
  if (process.env.BENCH_SKIP_BUILD !== '1') {
    log('building api-gateway and product-service');
    execFileSync('npx', ['nx', 'run-many', '-t', 'build', '-p', 'api-gateway', 'product-service', '--outputStyle=static'], { cwd: root, stdio: 'inherit' });
  }

  const loadAtStart = os.loadavg();
  const [productPort, gatewayPort, nginxPort] = [await freePort(), await freePort(), await freePort()];
  const databaseUrl = await createDatabase();
  const product = startApp('product-service', { PORT: String(productPort), DATABASE_URL: databaseUrl, REDIS_URL, JWT_SECRET });
  await waitFor(`http://127.0.0.1:${productPort}/health/ready`, product, 'product-service');
  const gateway = startApp('api-gateway', {
    PORT: String(gatewayPort),
    REDIS_URL,
    JWT_SECRET,
    PRODUCT_SERVICE_URL: `http://127.0.0.1:${productPort}`,
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_DEFAULT: '1000000000/60s',
    RATE_LIMIT_KEY_PREFIX: `bench:${Date.now()}`,
  });
  await waitFor(`http://127.0.0.1:${gatewayPort}/health/ready`, gateway, 'api-gateway');
  const nginx = await startNginx(productPort, nginxPort);
  const nginxDeadline = Date.now() + 10_000;
  while (!(await reachable(`http://127.0.0.1:${nginxPort}`))) {
    if (nginx.exitCode !== null || Date.now() > nginxDeadline) throw new Error('nginx did not start (see its output above)');
    await sleep(100);
  }

  const adminToken = jwt.sign({ role: 'admin' }, JWT_SECRET, { subject: '00000000-0000-4000-8000-000000000001', issuer: 'cloudretail', expiresIn: '10m' });
  const created = await fetch(`http://127.0.0.1:${productPort}/products`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ sku: `BENCH-${Date.now()}`, name: 'Bench shoe', description: 'Seeded by the benchmark', category: 'footwear', priceCents: 4999 }),
  });
  if (created.status !== 201) throw new Error(`seeding failed: ${created.status} ${await created.text()}`);
  const { id } = await created.json();
  const customerToken = jwt.sign({ role: 'customer' }, JWT_SECRET, { subject: '00000000-0000-4000-8000-000000000002', issuer: 'cloudretail', expiresIn: '10m' });
  const auth = { authorization: `Bearer ${customerToken}` };

  // The token goes to every target, so each upstream does the same work (product-service verifies it too).
  const targets = [
    ['direct (product-service)', `http://127.0.0.1:${productPort}/products/${id}`],
    ['nginx → product-service', `http://127.0.0.1:${nginxPort}/api/products/${id}`],
    ['api-gateway → product-service', `http://127.0.0.1:${gatewayPort}/api/products/${id}`],
  ];
  // Rounds alternate the order (A B C, C B A, …) so a machine getting busier or quieter over the
  // run does not favour whichever target happens to go first.
  const measured = targets.map(() => []);
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? [0, 1, 2] : [2, 1, 0];
    for (const i of order) measured[i].push(await measure(targets[i][0], targets[i][1], auth, round));
  }
  const rows = targets.map(([name, url], i) => combine(name, url, measured[i]));
  const [direct, viaNginx, viaGateway] = rows;
  const ratio = viaGateway.requestsPerSecond / viaNginx.requestsPerSecond;
  const p99Overhead = viaGateway.latencyMs.p99 - direct.latencyMs.p99;
  const summary = {
    gatewayToNginxThroughput: Number(ratio.toFixed(3)),
    gatewayP99MinusDirectP99Ms: p99Overhead,
    targets: { gatewayToNginxThroughputAtLeast: TARGETS.throughput, gatewayP99OverheadAtMostMs: TARGETS.p99OverheadMs },
    met: { throughput: ratio >= TARGETS.throughput, p99: p99Overhead <= TARGETS.p99OverheadMs },
  };

  const metricsText = await (await fetch(`http://127.0.0.1:${gatewayPort}/metrics`)).text();
  const redisUp = /gateway_rate_limiter_redis_up\{[^}]*\} (\d)/.exec(metricsText)?.[1];

  const at = new Date();
  const stamp = at.toISOString().replace(/[:.]/g, '-');
  const result = {
    at: at.toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, loadAverageAtStart: loadAtStart, loadAverageAtEnd: os.loadavg() },
    settings: { connections: CONNECTIONS, durationS: DURATION_S, warmupS: WARMUP_S, rounds: ROUNDS, nginxWorkers: 1, gateway: { jwtVerification: true, rateLimiting: true, rateLimiterRedisUp: redisUp === '1', logLevel: 'warn' } },
    rows,
    summary,
  };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, `${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
  const md = `# Benchmark: GET /api/products/:id (${result.at})

${CONNECTIONS} connections; ${ROUNDS} rounds in alternating order, each ${DURATION_S} s per target after ${WARMUP_S} s warm-up (means over rounds); ${result.machine.cpus} CPUs (${result.machine.cpuModel}), Node ${process.version}.
Gateway: JWT verified (cached), rate limiting on (Redis ${redisUp === '1' ? 'up' : 'DOWN'}), LOG_LEVEL=warn. nginx: 1 worker, keepalive upstream.
Load generator (autocannon), Postgres, Redis and the processes under test share the same machine; 1-min load average ${loadAtStart[0].toFixed(1)} at start, ${os.loadavg()[0].toFixed(1)} at end (other work on the machine skews the numbers).

${table(rows)}

- gateway / nginx throughput: **${(ratio * 100).toFixed(1)}%** (target ≥ ${TARGETS.throughput * 100}%: ${summary.met.throughput ? 'met' : 'NOT met'})
- gateway p99 − direct p99: **${p99Overhead} ms** (target ≤ ${TARGETS.p99OverheadMs} ms: ${summary.met.p99 ? 'met' : 'NOT met'})
`;
  writeFileSync(path.join(resultsDir, 'latest.md'), md);
  process.stdout.write(`\n${md}\n`);
  log(`wrote bench/results/${stamp}.json and bench/results/latest.md`);
}

main()
  .then(cleanup, async (error) => {
    log(`failed: ${error.stack ?? error}`);
    await cleanup();
    process.exitCode = 1;
  })
  .finally(() => setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref());
