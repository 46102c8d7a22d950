#!/usr/bin/env node
// `npm run bench`: GET /api/products/:id through the gateway (JWT verification and rate limiting
// on), directly against product-service, and through nginx, in one run on one machine. Builds the
// two apps, starts them from dist against the default Postgres and Redis (a fresh bench database),
// seeds a product, drives each target with autocannon, prints a table and writes
// bench/results/<timestamp>.json and its section of bench/results/latest.md. Stops by itself.
// Then the checkout scenario (checkout.mjs); `npm run bench -- gateway|checkout` runs one.
//
// Env: BENCH_DURATION_S (10), BENCH_WARMUP_S (3), BENCH_CONNECTIONS (50), BENCH_ROUNDS (2), POSTGRES_URL, REDIS_URL,
// BENCH_SKIP_BUILD=1 to reuse dist/.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { runCheckout } from './checkout.mjs';
import {
  REDIS_URL,
  assertServersUp,
  buildApps,
  cleanup,
  createDatabase,
  freePort,
  log,
  markdownTable,
  onCleanup,
  reachable,
  resultsDir,
  root,
  signToken,
  sleep,
  startApp,
  stopChild,
  waitFor,
  writeLatestSection,
} from './common.mjs';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const TARGETS = { throughput: 0.4, p99OverheadMs: 5 };

async function startNginx(upstreamPort, port) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cloudretail-bench-nginx-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
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
  onCleanup(() => stopChild(child, 'SIGQUIT'));
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

/** `x` to `digits` decimals, as a number: derived values are printed without float noise (11.67, not 11.670000000000002). */
const round = (x, digits = 2) => Number(x.toFixed(digits));

/** Rounds of one target combined: mean throughput and latency percentiles, summed counts. */
function combine(name, url, rounds) {
  const mean = (pick) => round(rounds.reduce((sum, r) => sum + pick(r), 0) / rounds.length);
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
  return markdownTable(header, rows.map((r) => [r.target, r.requestsPerSecond, r.latencyMs.p50, r.latencyMs.p99, r.errors, r.non2xx]));
}

/** The gateway scenario; expects api-gateway and product-service built. */
async function runGateway() {
  const loadAtStart = os.loadavg();
  const [productPort, gatewayPort, nginxPort, nodeProxyPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const databaseUrl = await createDatabase();
  const product = startApp('product-service', { PORT: String(productPort), DATABASE_URL: databaseUrl, REDIS_URL });
  await waitFor(`http://127.0.0.1:${productPort}/health/ready`, product, 'product-service');
  const gateway = startApp('api-gateway', {
    PORT: String(gatewayPort),
    REDIS_URL,
    PRODUCT_SERVICE_URL: `http://127.0.0.1:${productPort}`,
    RATE_LIMIT_ENABLED: 'true',
    RATE_LIMIT_DEFAULT: '1000000000/60s',
    RATE_LIMIT_KEY_PREFIX: `bench:${Date.now()}`,
  });
  await waitFor(`http://127.0.0.1:${gatewayPort}/health/ready`, gateway, 'api-gateway');
  const nodeProxy = spawn(process.execPath, [path.join(root, 'tools/bench/node-proxy.mjs'), String(nodeProxyPort), `http://127.0.0.1:${productPort}`], { stdio: ['ignore', 'inherit', 'inherit'] });
  onCleanup(() => stopChild(nodeProxy));
  const nginx = await startNginx(productPort, nginxPort);
  const nginxDeadline = Date.now() + 10_000;
  while (!(await reachable(`http://127.0.0.1:${nginxPort}`))) {
    if (nginx.exitCode !== null || Date.now() > nginxDeadline) throw new Error('nginx did not start (see its output above)');
    await sleep(100);
  }
  while (!(await reachable(`http://127.0.0.1:${nodeProxyPort}`))) {
    if (nodeProxy.exitCode !== null || Date.now() > nginxDeadline) throw new Error('tools/bench/node-proxy.mjs did not start (see its output above)');
    await sleep(100);
  }

  const adminToken = signToken('00000000-0000-4000-8000-000000000001', 'admin', '10m');
  const created = await fetch(`http://127.0.0.1:${productPort}/products`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ sku: `BENCH-${Date.now()}`, name: 'Bench shoe', description: 'Seeded by the benchmark', category: 'footwear', priceCents: 4999 }),
  });
  if (created.status !== 201) throw new Error(`seeding failed: ${created.status} ${await created.text()}`);
  const { id } = await created.json();
  const customerToken = signToken('00000000-0000-4000-8000-000000000002', 'customer', '10m');
  const auth = { authorization: `Bearer ${customerToken}` };

  // The token goes to every target, so each upstream does the same work (product-service verifies it too).
  const targets = [
    ['direct (product-service)', `http://127.0.0.1:${productPort}/products/${id}`],
    ['nginx → product-service', `http://127.0.0.1:${nginxPort}/api/products/${id}`],
    ['api-gateway → product-service', `http://127.0.0.1:${gatewayPort}/api/products/${id}`],
    // The floor for any node:http gateway: a proxy with no features at all (reference only).
    ['bare node proxy → product-service', `http://127.0.0.1:${nodeProxyPort}/api/products/${id}`],
  ];
  // Rounds alternate the order (A B C, C B A, …) so a machine getting busier or quieter over the
  // run does not favour whichever target happens to go first.
  const measured = targets.map(() => []);
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? [0, 1, 2, 3] : [3, 2, 1, 0];
    for (const i of order) measured[i].push(await measure(targets[i][0], targets[i][1], auth, round));
  }
  const rows = targets.map(([name, url], i) => combine(name, url, measured[i]));
  const [direct, viaNginx, viaGateway, viaNodeProxy] = rows;
  const ratio = viaGateway.requestsPerSecond / viaNginx.requestsPerSecond;
  const p99Overhead = round(viaGateway.latencyMs.p99 - direct.latencyMs.p99);
  const floorP99Overhead = round(viaNodeProxy.latencyMs.p99 - direct.latencyMs.p99);
  const summary = {
    gatewayToNginxThroughput: round(ratio, 3),
    gatewayP99MinusDirectP99Ms: p99Overhead,
    bareNodeProxyP99MinusDirectP99Ms: floorP99Overhead,
    bareNodeProxyToNginxThroughput: round(viaNodeProxy.requestsPerSecond / viaNginx.requestsPerSecond, 3),
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
- for reference, a bare node:http proxy (tools/bench/node-proxy.mjs: no checks, metrics or logs): ${(summary.bareNodeProxyToNginxThroughput * 100).toFixed(1)}% of nginx, p99 − direct p99 ${floorP99Overhead} ms
`;
  writeLatestSection('gateway', md);
  process.stdout.write(`\n${md}\n`);
  log(`wrote bench/results/${stamp}.json and bench/results/latest.md`);
}

// `npm run bench` runs every scenario; `npm run bench -- checkout` (or `gateway`, or
// BENCH_SCENARIOS=checkout,gateway) only those; `--quick` makes the checkout a 5 s smoke run.
const SCENARIOS = {
  gateway: { apps: ['api-gateway', 'product-service'], run: () => runGateway() },
  checkout: { apps: ['product-service', 'inventory-service', 'payment-service', 'order-service', ...(process.env.BENCH_CHECKOUT_VIA === 'gateway' ? ['api-gateway'] : [])], run: (options) => runCheckout(options) },
};

async function main() {
  const args = process.argv.slice(2);
  const named = [...args.filter((a) => !a.startsWith('--')), ...(process.env.BENCH_SCENARIOS ?? '').split(',')].map((s) => s.trim()).filter(Boolean);
  const unknown = named.filter((n) => !SCENARIOS[n]);
  if (unknown.length) throw new Error(`unknown scenario ${unknown.join(', ')} (known: ${Object.keys(SCENARIOS).join(', ')})`);
  const chosen = named.length ? [...new Set(named)] : Object.keys(SCENARIOS);
  const quick = args.includes('--quick') || process.env.BENCH_QUICK === '1';
  await assertServersUp();
  buildApps([...new Set(chosen.flatMap((name) => SCENARIOS[name].apps))]);
  for (const name of chosen) {
    log(`scenario: ${name}`);
    await SCENARIOS[name].run({ quick });
    await cleanup(); // stop this scenario's processes and drop its databases before the next one
  }
}

main()
  .then(cleanup, async (error) => {
    log(`failed: ${error.stack ?? error}`);
    await cleanup();
    process.exitCode = 1;
  })
  .finally(() => setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref());
