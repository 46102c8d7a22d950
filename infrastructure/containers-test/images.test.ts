import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { generateEventKeySet } from '@cloudretail/events';
import { createTestDatabase, TEST_REDIS_URL, type TestDatabase } from '@cloudretail/testing';
import { APP_NAMES, APPS, type AppName, SECRET_STAND_INS, appConfigs } from '../test/support';
import { DOCKER, TEST_LABEL, docker, freePort, inspect, logsOf, readState, sh, sleep, waitUntil } from './docker';

/**
 * Each of the seven images, as built and pushed by global-setup: its size, user and labels, pulled
 * back by digest, then started as its own CMD with a read-only root filesystem against the local
 * Postgres and Redis: ready, Docker's HEALTHCHECK `healthy`, and `docker stop` drains it (readiness
 * 503, the in-flight request answered) and it exits 0 within the grace period.
 */
const state = readState();
const BUDGET_BYTES = 250 * 1000 * 1000;
const report: { app: string; mb: string; layers: number; readyMs: number; stopMs: number }[] = [];

afterAll(() => {
  console.log(
    ['| image | size | layers | cold start → ready | docker stop → exit |', '|---|---|---|---|---|', ...report.map((r) => `| ${r.app} | ${r.mb} MB | ${r.layers} | ${r.readyMs} ms | ${r.stopMs} ms |`)].join('\n'),
  );
});

test('build-images.sh pushed all seven images by digest', () => {
  expect(Object.keys(state.digests).sort()).toEqual([...APP_NAMES].sort());
  for (const [app, ref] of Object.entries(state.digests)) expect(ref).toMatch(new RegExp(`^${state.registry.replace(/\./g, '\\.')}/${app}@sha256:[0-9a-f]{64}$`));
});

test('the images share one base: the Debian, tini and node layers are the same seven times', () => {
  const layers = APP_NAMES.map((app) => inspect<string[]>(state.digests[app], '.RootFS.Layers'));
  // debian base, the tini + node user layer, the node binary from the shared dependency stage
  const shared = layers[0].slice(0, 3);
  for (const [i, app] of APP_NAMES.entries()) expect({ app, base: layers[i].slice(0, 3) }).toEqual({ app, base: shared });
});

describe.each(APP_NAMES)('%s image', (app) => {
  const ref = () => state.digests[app];

  test('is within 250 MB, runs as uid 1000 and carries the OCI labels of this commit', () => {
    const size = inspect<number>(ref(), '.Size');
    const labels = inspect<Record<string, string>>(ref(), '.Config.Labels');

    expect({ app, withinBudget: size <= BUDGET_BYTES, mb: (size / 1e6).toFixed(1) }).toEqual({ app, withinBudget: true, mb: (size / 1e6).toFixed(1) });
    expect(inspect<string>(ref(), '.Config.User')).toBe('1000:1000');
    expect(labels['org.opencontainers.image.revision']).toBe(state.revision);
    expect(labels['org.opencontainers.image.version']).toBe(state.tag);
    expect(labels['org.opencontainers.image.source']).toMatch(/^https:\/\//);
    expect(labels['org.opencontainers.image.title']).toBe(app);
  });

  test('is pulled back from the registry by digest as the same image', () => {
    const id = inspect<string>(ref(), '.Id');
    docker('rmi', '-f', id);
    expect(sh(DOCKER, ['image', 'inspect', ref()], { allowFail: true }).status).not.toBe(0);

    docker('pull', '--quiet', ref());

    expect(inspect<string>(ref(), '.Id')).toBe(id);
  });

  describe('started as its CMD, read-only, as its user', () => {
    let db: TestDatabase | undefined;
    let upstream: Server | undefined;
    const name = `cloudretail-test-${app}-${process.pid}`;

    afterAll(async () => {
      sh(DOCKER, ['rm', '-f', name], { allowFail: true });
      await db?.drop();
      upstream?.close();
    });

    test('gets ready and healthy, and `docker stop` drains it and exits 0 within the grace period', async () => {
      const { env, healthPort, inFlightPath } = await environment(app, async (server) => (upstream = server), async () => (db = await createTestDatabase(`img_${app.replace(/-/g, '_')}`)));
      const ready = `http://127.0.0.1:${healthPort}/health/ready`;

      // Arrange: the migrations as Kubernetes runs them, in an init container of the same image.
      if (env.DATABASE_URL) {
        const run = ['run', '--rm', '--label', TEST_LABEL, '--network', 'host', '--read-only', ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]), ref()];
        expect(sh(DOCKER, [...run, 'node', 'main.js', 'migrate', 'up'], { allowFail: true })).toEqual({ status: 0, out: expect.any(String) });
        env.MIGRATE_ON_START = 'false';
      }

      // Act: cold start
      const started = Date.now();
      docker('run', '--detach', '--name', name, '--label', TEST_LABEL, '--network', 'host', '--read-only', '--tmpfs', '/tmp', '--health-interval', '1s', '--stop-timeout', '30', ...Object.entries(env).flatMap(([k, v]) => ['--env', `${k}=${v}`]), ref());
      await waitUntil(`${app} /health/ready`, async () => ((await fetch(ready).then((r) => r.status, () => 0)) === 200 ? true : undefined), 60_000, () => logsOf(name));
      const readyMs = Date.now() - started;
      await waitUntil(`${app} HEALTHCHECK healthy`, () => (inspect<string>(name, '.State.Health.Status') === 'healthy' ? true : undefined), 30_000, () => logsOf(name));
      expect(inspect<string>(name, '.Config.User')).toBe('1000:1000');
      expect(inspect<boolean>(name, '.HostConfig.ReadonlyRootfs')).toBe(true);

      // Act: a request in flight, then docker stop (SIGTERM through tini)
      const inFlight = fetch(`http://127.0.0.1:${env.PORT}${inFlightPath}`).then((r) => ({ status: r.status, at: Date.now() }), (e: Error) => ({ status: 0, at: Date.now(), error: e.message }));
      await sleep(300);
      const stopAt = Date.now();
      const stopping = new Promise<number>((resolve) => {
        const child = spawn(DOCKER, ['stop', name], { stdio: 'ignore' });
        child.on('exit', () => resolve(Date.now()));
      });
      const notReady = await waitUntil(`${app} readiness 503 after docker stop`, async () => ((await fetch(ready).then((r) => r.status, () => 0)) === 503 ? true : undefined), 5_000, () => logsOf(name));
      const answer = await inFlight;
      const stoppedAt = await stopping;

      // Assert
      expect(notReady).toBe(true);
      expect({ app, status: answer.status, answeredAfterStop: answer.at > stopAt }).toEqual({ app, status: expect.any(Number), answeredAfterStop: true });
      expect(answer.status).toBeGreaterThan(0);
      expect({ app, exitCode: inspect<number>(name, '.State.ExitCode'), oomKilled: inspect<boolean>(name, '.State.OOMKilled') }).toEqual({ app, exitCode: 0, oomKilled: false });
      expect(stoppedAt - stopAt).toBeLessThan(30_000);
      report.push({ app, mb: (inspect<number>(ref(), '.Size') / 1e6).toFixed(0), layers: inspect<string[]>(ref(), '.RootFS.Layers').length, readyMs, stopMs: stoppedAt - stopAt });
    });
  });
});

/**
 * The environment an app needs, as Kubernetes would give it: its config's required variables (real
 * key pairs where it wants keys), a database of its own, the test Redis, a delay on every request
 * so one is still in flight when `docker stop` arrives — and, for the gateway, slow upstreams.
 */
async function environment(app: AppName, keepUpstream: (s: Server) => Promise<unknown>, makeDb: () => Promise<TestDatabase>) {
  const config = (await appConfigs()).find((c) => c.app === app)!;
  const keys = new Set(config.vars.map((v) => v.variable));
  const port = await freePort();
  const env: Record<string, string> = {
    PORT: String(port),
    LOG_LEVEL: 'warn',
    REDIS_URL: TEST_REDIS_URL,
    SHUTDOWN_DELAY_MS: '1000',
    SHUTDOWN_TIMEOUT_MS: '10000',
    EVENT_TOPIC_PREFIX: `img${process.pid}.`,
  };
  let healthPort = port;
  if (keys.has('ADMIN_PORT')) env.ADMIN_PORT = String((healthPort = await freePort()));
  if (APPS[app].database) env.DATABASE_URL = (await makeDb()).url;
  let inFlightPath = '/drain-probe';
  if (keys.has('FAULT_DELAY_MS')) env.FAULT_DELAY_MS = '1500';
  if (app === 'api-gateway') {
    // Upstreams that take 1.5 s: a proxied request is in flight when the stop arrives.
    const upstreamPort = await freePort();
    const server = createServer((_req, res) => setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[]}'), 1500)).listen(upstreamPort, '127.0.0.1');
    await keepUpstream(server);
    for (const v of config.vars) if (v.variable.endsWith('_SERVICE_URL') || v.variable === 'EVENT_BUS_URL') env[v.variable] = `http://127.0.0.1:${upstreamPort}`;
    inFlightPath = '/api/products';
  }
  if (keys.has('EVENT_SIGNING_KEY')) {
    // NODE_ENV=production: events are signed with the service's own key and verified with the bundle.
    const set = generateEventKeySet(['event-bus']);
    env.EVENT_VERIFY_KEYS = set.verifyKeys;
    env.EVENT_SIGNING_KEY = set.signingKeys[app];
  }
  // Tokens: user-service signs with its RS256 key, every other service verifies with the public half.
  const jwt = generateKeyPairSync('rsa', { modulusLength: 2048 });
  if (keys.has('JWT_PRIVATE_KEY')) env.JWT_PRIVATE_KEY = jwt.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  if (keys.has('JWT_PUBLIC_KEY')) env.JWT_PUBLIC_KEY = jwt.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  for (const v of config.vars) if (v.required && !(v.variable in env)) env[v.variable] = SECRET_STAND_INS[v.variable] ?? 'stand-in-value-0123456789';
  return { env, healthPort, inFlightPath };
}
