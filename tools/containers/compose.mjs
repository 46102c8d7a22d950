#!/usr/bin/env node
// `npm run compose:up` / `npm run compose:down`: the compose stack with progress and a clear end.
//
//   node tools/containers/compose.mjs up [--kafka] [--monitoring] [--build | --no-build] [--timeout SECONDS]
//   node tools/containers/compose.mjs down [--kafka] [--monitoring]
//
// up: picks the compose client (`docker compose`, else docker-compose 1.29), builds the app images
// that are missing with tools/build-images/build-images.sh (--build: all of them) — first the
// air-gapped base images when the public ones cannot be pulled —
// starts the stack, waits until every service is healthy and prints the gateway URL. With
// --no-build the app images are pulled from IMAGE_REGISTRY/IMAGE_TAG instead. When a service
// does not get healthy it names it, prints its last log lines and exits 1.
// down: removes the stack's containers, networks and volumes.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { eventKeySet } from '../scripts/event-keys.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const docker = process.env.DOCKER ?? 'docker';
const say = (line) => console.log(`compose: ${line}`);

const { values, positionals } = parseArgs({
  options: {
    kafka: { type: 'boolean', default: false },
    monitoring: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    build: { type: 'boolean', default: false },
    timeout: { type: 'string', default: '240' },
  },
  allowPositionals: true,
});
const command = positionals[0];

function sh(cmd, args, { quiet = false, env = process.env } = {}) {
  const result = spawnSync(cmd, args, { cwd: root, env, encoding: 'utf8', stdio: quiet ? 'pipe' : ['ignore', 'inherit', 'inherit'], maxBuffer: 32 * 1024 * 1024 });
  if (result.error) throw new Error(`${cmd}: ${result.error.message}`);
  return result;
}

function fail(message) {
  console.error(`compose: ${message}`);
  process.exit(1);
}

/** `docker compose` (v2) when the client has it, else docker-compose (1.29 on Debian 12). */
function composeClient() {
  if (sh(docker, ['compose', 'version'], { quiet: true }).status === 0) return [docker, 'compose'];
  if (sh('docker-compose', ['version', '--short'], { quiet: true }).status === 0) return ['docker-compose'];
  fail('neither `docker compose` nor docker-compose is installed');
}

const APPS = ['api-gateway', 'user-service', 'product-service', 'order-service', 'inventory-service', 'payment-service', 'event-bus'];
const files = ['docker-compose.yml', ...(values.kafka ? ['docker-compose.kafka.yml'] : []), ...(values.monitoring ? ['docker-compose.monitoring.yml'] : [])];
const imageExists = (image) => sh(docker, ['image', 'inspect', image], { quiet: true }).status === 0;

/**
 * The public base images when they are here or can be pulled; otherwise the air-gapped ones,
 * built from Debian's packages by base-images.sh (once; it skips what is up to date).
 */
function baseImages(env) {
  const wanted = { NODE_IMAGE: 'node:24.21.0-bookworm-slim', DEBIAN_IMAGE: 'debian:12.11-slim', POSTGRES_IMAGE: 'postgres:15.13-bookworm', REDIS_IMAGE: 'redis:7.4.2-bookworm' };
  const missing = Object.entries(wanted).filter(([name, image]) => !env[name] && !imageExists(image));
  if (!missing.length) return;
  say(`pulling ${missing.map(([, image]) => image).join(', ')}`);
  if (missing.every(([, image]) => sh(docker, ['pull', '--quiet', image], { quiet: true }).status === 0)) return;
  say('the public registry is unreachable: using the air-gapped base images (tools/containers/base-images.sh)');
  const script = path.join(root, 'tools/containers/base-images.sh');
  if (sh(script, [], { env }).status !== 0) fail('building the base images failed (see above)');
  const printed = sh(script, ['--print-env'], { quiet: true, env }).stdout;
  for (const [, name, value] of printed.matchAll(/(\w+)=(\S+)/g)) if (!env[name]) env[name] = value;
}

function containers(compose, env) {
  const ids = sh(compose[0], [...compose.slice(1), ...files.flatMap((f) => ['-f', f]), 'ps', '-q'], { quiet: true, env }).stdout.split('\n').filter(Boolean);
  if (!ids.length) return [];
  const out = sh(docker, ['inspect', '--format', '{{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}', ...ids], { quiet: true }).stdout;
  return out.split('\n').filter(Boolean).map((line) => {
    const [service, state, health] = line.split(' ');
    return { service, state, health };
  });
}

/**
 * The stack's secrets, made once per checkout and kept in .data/compose/secrets.env (gitignored):
 * the Postgres password, each service's Ed25519 event-signing key with the bundle of public keys
 * every consumer verifies with (the libs/events formats), and user-service's RS256 token key with
 * its public half for the verifiers. Plain `docker compose` reads them
 * with `--env-file .data/compose/secrets.env`. What the caller's environment sets wins.
 */
function secrets() {
  const file = path.join(root, '.data/compose/secrets.env');
  const have = existsSync(file) ? Object.fromEntries(readFileSync(file, 'utf8').split('\n').filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])) : {};
  const made = {};
  if (!have.POSTGRES_PASSWORD) made.POSTGRES_PASSWORD = randomBytes(18).toString('base64url');
  if (!have.EVENT_VERIFY_KEYS) {
    const keys = eventKeySet();
    made.EVENT_VERIFY_KEYS = keys.verifyKeys;
    for (const [service, key] of Object.entries(keys.signingKeys)) made[`${service.toUpperCase().replace(/-/g, '_')}_EVENT_SIGNING_KEY`] = key;
  }
  if (!have.JWT_PRIVATE_KEY) {
    // One line each: libs/auth reads `\n` escapes as newlines.
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const line = (key, type) => key.export({ format: 'pem', type }).trim().replace(/\n/g, '\\n');
    made.JWT_PRIVATE_KEY = line(privateKey, 'pkcs8');
    made.JWT_PUBLIC_KEY = line(publicKey, 'spki');
  }
  if (Object.keys(made).length) {
    mkdirSync(path.dirname(file), { recursive: true });
    const head = existsSync(file) ? '' : '# Made by `npm run compose:up` (tools/containers/compose.mjs); delete it to make new ones.\n';
    writeFileSync(file, `${head}${Object.entries(made).map(([k, v]) => `${k}=${v}`).join('\n')}\n`, { mode: 0o600, flag: 'a' });
    say(`made the stack's secrets (${Object.keys(made).join(', ')}): ${path.relative(root, file)}`);
  }
  return { ...have, ...made };
}

async function up() {
  const env = { ...secrets(), ...process.env };
  env.GRAFANA_ADMIN_PASSWORD ??= values.monitoring ? crypto.randomUUID() : 'unused';
  const compose = composeClient();
  const run = (...args) => sh(compose[0], [...compose.slice(1), ...files.flatMap((f) => ['-f', f]), ...args], { env });
  baseImages(env);
  const registry = env.IMAGE_REGISTRY ?? 'cloudretail';
  const tag = env.IMAGE_TAG ?? 'local';
  if (values['no-build']) {
    say(`pulling the app images from ${registry} (tag ${tag})`);
    if (run('pull', '--quiet', ...APPS).status !== 0) fail('pulling the app images failed (see above)');
  } else {
    // The one build path of the project (the same script CI uses), for the images that are missing;
    // --build rebuilds all of them. Local images are not published, so they are not scanned here.
    const missing = values.build ? APPS : APPS.filter((app) => !imageExists(`${registry}/${app}:${tag}`));
    if (missing.length) {
      say(`building ${missing.join(', ')}`);
      const built = sh(path.join(root, 'tools/build-images/build-images.sh'), ['--registry', registry, '--tag', tag, '--no-scan', ...missing], { env });
      if (built.status !== 0) fail('building the images failed (see above)');
    }
  }
  const started = Date.now();
  say(`starting ${files.join(' + ')}`);
  if (run('up', '--detach', '--no-build').status !== 0) {
    for (const c of containers(compose, env).filter((c) => c.state !== 'running' || c.health === 'unhealthy')) {
      console.error(`compose: ${c.service} is ${c.state}/${c.health}; its last log lines:`);
      run('logs', '--no-color', '--tail', '30', c.service);
    }
    fail('`up` failed (see above); `npm run compose:down` removes what it started');
  }

  const deadline = started + Number(values.timeout) * 1000;
  const seen = new Map();
  for (;;) {
    const list = containers(compose, env);
    for (const c of list) {
      const status = c.health === 'none' ? c.state : c.health;
      if (seen.get(c.service) !== status) say(`${c.service.padEnd(18)} ${status} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      seen.set(c.service, status);
    }
    const bad = list.filter((c) => c.state !== 'running' || c.health === 'unhealthy');
    const waiting = list.filter((c) => c.health === 'starting');
    if (bad.length || (waiting.length && Date.now() > deadline)) {
      for (const c of [...bad, ...waiting]) {
        console.error(`compose: ${c.service} is ${c.state}/${c.health}; its last log lines:`);
        run('logs', '--no-color', '--tail', '30', c.service);
      }
      fail(`${[...bad, ...waiting].map((c) => c.service).join(', ')} did not get healthy; \`npm run compose:down\` removes the stack`);
    }
    if (list.length && !waiting.length) break;
    await new Promise((r) => setTimeout(r, 2000));
  }
  say(`every service is healthy after ${((Date.now() - started) / 1000).toFixed(0)} s`);
  console.log(`CloudRetail is up: http://localhost:${env.GATEWAY_PORT ?? 8080}`);
  if (values.monitoring) console.log(`Grafana: http://localhost:${env.GRAFANA_PORT ?? 3000} (admin password: ${env.GRAFANA_ADMIN_PASSWORD}), Prometheus: http://localhost:${env.PROMETHEUS_PORT ?? 9090}`);
}

function down() {
  const env = { ...secrets(), ...process.env, GRAFANA_ADMIN_PASSWORD: process.env.GRAFANA_ADMIN_PASSWORD ?? 'unused' };
  const compose = composeClient();
  // Every file, so containers of an opt-in addition started earlier are removed too.
  const all = ['docker-compose.yml', 'docker-compose.kafka.yml', 'docker-compose.monitoring.yml'];
  say('removing containers, networks and volumes');
  const result = sh(compose[0], [...compose.slice(1), ...all.flatMap((f) => ['-f', f]), 'down', '--volumes', '--remove-orphans', '--timeout', '30'], { env });
  if (result.status !== 0) fail('`down` failed (see above)');
  say('done');
}

if (command === 'up') await up();
else if (command === 'down') down();
else fail('usage: compose.mjs up [--kafka] [--monitoring] [--build | --no-build] [--timeout SECONDS] | down');
