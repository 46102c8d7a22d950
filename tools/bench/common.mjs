// Helpers shared by the bench scenarios (run.mjs: gateway, checkout.mjs: checkout saga): building
// and starting apps from dist, fresh databases, cleanup on exit or Ctrl-C, tables and
// bench/results/latest.md sections.
import { execFileSync, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jwt from 'jsonwebtoken';
import pg from 'pg';
import { eventKeySet } from '../scripts/event-keys.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const resultsDir = path.join(root, 'bench/results');
export const POSTGRES_URL = process.env.POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export const log = (msg) => process.stdout.write(`[bench] ${msg}\n`);
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const cleanups = [];
/** Registers an undo step; `cleanup()` runs them last-in first-out. */
export const onCleanup = (fn) => cleanups.push(fn);
export async function cleanup() {
  while (cleanups.length) {
    try {
      await cleanups.pop()();
    } catch (error) {
      log(`cleanup: ${error.message}`);
    }
  }
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => cleanup().then(() => process.exit(130)));

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export function reachable(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => (socket.destroy(), resolve(true)));
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
    socket.on('error', () => resolve(false));
  });
}

/** Throws unless Postgres and Redis answer at the configured URLs. */
export async function assertServersUp() {
  for (const [what, url] of [
    ['Postgres', POSTGRES_URL],
    ['Redis', REDIS_URL],
  ]) {
    if (!(await reachable(url))) throw new Error(`${what} is not reachable at ${url}`);
  }
}

/** Production builds of `projects` in one nx call (skipped with BENCH_SKIP_BUILD=1). */
export function buildApps(projects) {
  if (process.env.BENCH_SKIP_BUILD === '1') return;
  log(`building ${projects.join(', ')}`);
  execFileSync('npx', ['nx', 'run-many', '-t', 'build', '-p', ...projects, '--outputStyle=static'], { cwd: root, stdio: 'inherit' });
}

export async function waitFor(url, child, name, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
    const res = await fetch(url).catch(() => undefined);
    if (res?.ok) return;
    await sleep(200);
  }
  throw new Error(`${name} not ready at ${url} within ${timeoutMs / 1000}s`);
}

/** One key set per bench run: the apps run with NODE_ENV=production, where events must be signed. */
const eventKeys = eventKeySet();
/** The run's token key: user-service would sign with it; the bench signs its clients' tokens itself. */
const tokenKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const tokenPublicKey = tokenKey.publicKey.export({ format: 'pem', type: 'spki' }).toString();

/** An RS256 token as user-service issues them, for the bench's clients. */
export const signToken = (subject, role, expiresIn = '2h') => jwt.sign({ role }, tokenKey.privateKey, { algorithm: 'RS256', subject, issuer: 'cloudretail', expiresIn });

/** Starts a built app from dist; its stderr and warn-level logs are shown. */
export function startApp(app, env) {
  // e.g. BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles every app under load
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, 'main.js'], {
    cwd: path.join(root, 'dist/apps', app),
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      SHUTDOWN_DELAY_MS: '0',
      SHUTDOWN_TIMEOUT_MS: '3000',
      ...(eventKeys.signingKeys[app] ? { EVENT_VERIFY_KEYS: eventKeys.verifyKeys, EVENT_SIGNING_KEY: eventKeys.signingKeys[app] } : {}),
      ...(app === 'user-service' ? { JWT_PRIVATE_KEY: tokenKey.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() } : { JWT_PUBLIC_KEY: tokenPublicKey }),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk) => process.stdout.write(`  ${app} | ${chunk}`));
  cleanups.push(() => stopChild(child));
  return child;
}

export function stopChild(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => (clearTimeout(kill), resolve()));
    child.kill(signal);
  });
}

/** A fresh, uniquely named database, dropped at cleanup; resolves with its URL. */
export async function createDatabase(label = '') {
  const name = `bench_${label ? `${label}_` : ''}${Date.now()}_${randomBytes(3).toString('hex')}`;
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

/** A markdown table; `rows` are arrays of cells in `header` order. */
export function markdownTable(header, rows) {
  const lines = rows.map((r) => r.map(String));
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(fmt)].join('\n');
}

/**
 * Writes one scenario's section of bench/results/latest.md and keeps the others, so the gateway
 * and checkout scenarios can run separately without clobbering each other's table. Sections sit
 * between `<!-- bench:<name> -->` markers; a file from before the markers is the gateway's.
 */
export function writeLatestSection(name, markdown) {
  const file = path.join(resultsDir, 'latest.md');
  mkdirSync(resultsDir, { recursive: true });
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (text.trim() && !text.includes('<!-- bench:')) text = `<!-- bench:gateway -->\n${text.trim()}\n<!-- /bench:gateway -->\n`;
  const block = `<!-- bench:${name} -->\n${markdown.trim()}\n<!-- /bench:${name} -->\n`;
  const section = new RegExp(`<!-- bench:${name} -->[\\s\\S]*?<!-- /bench:${name} -->\\n?`);
  text = section.test(text) ? text.replace(section, () => block) : `${text.trimEnd()}${text.trim() ? '\n\n' : ''}${block}`;
  writeFileSync(file, text);
}
