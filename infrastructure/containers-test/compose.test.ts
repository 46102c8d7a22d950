import { APP_NAMES, APPS } from '../test/support';
import { docker, freePort, readState, sh } from './docker';
import { type FuzzRequest, type OpenApi, campaign, judge } from './fuzz';

/**
 * `docker compose up` proven end to end: `npm run compose:up -- --no-build` brings the default
 * stack (seven apps from the registry, Postgres with a database per service, Redis, Redis Streams)
 * up and healthy; a client's flow through the gateway passes (the smoke suite: register → log in →
 * order with tok_visa → the SSE stream delivers CONFIRMED → tok_chargeDeclined → CANCELLED →
 * admin refund → REFUNDED, stock back); `npm run compose:down` leaves nothing behind. Runs with
 * whichever compose client is installed (docker-compose 1.29 on this machine).
 */
const state = readState();
const project = `crtest${process.pid}`;
let env: NodeJS.ProcessEnv;

const projectObjects = () => ({
  containers: docker('ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`),
  networks: docker('network', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`),
  volumes: docker('volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${project}`),
});

beforeAll(async () => {
  const ports: Record<string, string> = {};
  for (const name of ['GATEWAY_PORT', 'USER_SERVICE_PORT', 'PRODUCT_SERVICE_PORT', 'ORDER_SERVICE_PORT', 'INVENTORY_SERVICE_PORT', 'PAYMENT_SERVICE_PORT', 'EVENT_BUS_PORT']) ports[name] = String(await freePort());
  // Rate limits high enough for the fuzz campaign below to reach the services.
  env = { ...process.env, ...state.baseImages, ...ports, COMPOSE_PROJECT_NAME: project, IMAGE_REGISTRY: state.registry, IMAGE_TAG: state.tag, RATE_LIMIT_DEFAULT: '100000/60s', RATE_LIMIT_AUTH: '100000/60s' };
});

afterAll(() => {
  // Whatever happened above, the stack goes.
  sh('node', ['tools/containers/compose.mjs', 'down'], { env, allowFail: true });
});

test('compose:up starts the stack from the registry images and waits until every service is healthy', () => {
  const up = sh('node', ['tools/containers/compose.mjs', 'up', '--no-build', '--timeout', '180'], { env, allowFail: true });

  expect({ status: up.status, out: up.status === 0 ? '' : up.out }).toEqual({ status: 0, out: '' });
  expect(up.out).toContain(`CloudRetail is up: http://localhost:${env.GATEWAY_PORT}`);
  const services = docker('ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Label "com.docker.compose.service"}} {{.Status}}').split('\n').sort();
  expect(services.map((s) => s.split(' ')[0])).toEqual([...APP_NAMES, 'postgres', 'redis'].sort());
  for (const s of services) expect(s).toContain('(healthy)');
  // The apps run the images that were pushed, not something built on the side.
  for (const app of APP_NAMES) {
    const image = docker('ps', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${app}`, '--format', '{{.Image}}');
    expect(image).toBe(`${state.registry}/${app}:${state.tag}`);
  }
});

test('a client flow through the gateway passes: order → SSE CONFIRMED, declined → CANCELLED, refund → REFUNDED', () => {
  const smoke = sh('npx', ['tsx', 'tools/smoke/src/cli.ts', '--env', 'local', '--base-url', `http://127.0.0.1:${env.GATEWAY_PORT}`], { env, allowFail: true });

  expect({ status: smoke.status, out: smoke.status === 0 ? '' : smoke.out }).toEqual({ status: 0, out: '' });
  expect(smoke.out).toContain('CONFIRMED, delivered by the SSE stream');
  expect(smoke.out).toMatch(/smoke: \d+ steps passed/);
});

/** Exact row counts of every table of every service database, read inside the Postgres container. */
function rowCounts(): Record<string, number> {
  const container = docker('ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=postgres');
  const counts: Record<string, number> = {};
  for (const database of APP_NAMES.map((app) => APPS[app].database).filter(Boolean) as string[]) {
    const sql = "SELECT table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1";
    for (const line of docker('exec', container, 'psql', '-U', 'cloudretail', '-d', database, '-At', '-F', '=', '-c', sql).split('\n').filter(Boolean)) {
      const [table, count] = line.split('=');
      counts[`${database}.${table}`] = Number(count);
    }
  }
  return counts;
}

async function send(requests: FuzzRequest[], concurrency = 8) {
  const base = `http://127.0.0.1:${env.GATEWAY_PORT}`;
  const outcomes: { request: FuzzRequest; status: number; problem?: string }[] = [];
  const queue = [...requests];
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let request = queue.shift(); request; request = queue.shift()) {
        const res = await fetch(base + request.path, { method: request.method, headers: request.headers, body: request.body, signal: AbortSignal.timeout(15_000) }).then(
          async (r) => ({ status: r.status, problem: judge(r.status, r.headers.get('content-type'), await r.text()) }),
          (e: Error) => ({ status: 0, problem: `no answer: ${e.message}` }),
        );
        outcomes.push({ request, ...res });
      }
    }),
  );
  return outcomes;
}

const summary = (outcomes: { request: FuzzRequest; status: number }[]) =>
  Object.entries(Object.groupBy(outcomes, (o) => `${o.request.kind} ${o.status}`))
    .map(([k, v]) => `${k}: ${v!.length}`)
    .sort()
    .join(', ');

test('fuzz: every operation of the merged OpenAPI, with valid, boundary and malformed input: no 5xx, every error in the envelope, nothing written by a rejected request', async () => {
  const base = `http://127.0.0.1:${env.GATEWAY_PORT}`;
  const doc = (await (await fetch(`${base}/api/docs/openapi.json`)).json()) as OpenApi;
  const email = `fuzz-${crypto.randomUUID()}@example.com`;
  const registered = (await (await fetch(`${base}/api/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: 'fuzz-password-1', name: 'Fuzz' }) })).json()) as { token: string };
  const admin = (await (await fetch(`${base}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: 'admin@cloudretail.local', password: 'change-me-admin' }) })).json()) as { token: string };
  const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
  const requests = campaign(doc, { seed, tokens: { anonymous: undefined, customer: registered.token, admin: admin.token } });
  const malformed = requests.filter((r) => r.kind === 'malformed');

  // Act 1: only malformed requests, between two snapshots of every table.
  const before = rowCounts();
  const rejected = await send(malformed);
  await new Promise((r) => setTimeout(r, 1000)); // anything a rejected request set off would have landed by now
  const after = rowCounts();
  // Act 2: valid and boundary requests.
  const rest = await send(requests.filter((r) => r.kind !== 'malformed'));

  console.log(`fuzz (seed ${seed}): ${requests.length} requests over ${Object.keys(doc.paths).length} paths — ${summary([...rejected, ...rest])}`);
  const problems = [...rejected, ...rest].filter((o) => o.problem).map((o) => `${o.request.kind} ${o.request.method} ${o.request.path.slice(0, 120)}: ${o.problem}`);
  expect({ seed, problems: problems.slice(0, 30), count: problems.length }).toEqual({ seed, problems: [], count: 0 });
  const accepted = rejected.filter((o) => o.status < 400).map((o) => `${o.request.method} ${o.request.path.slice(0, 120)} ${o.status} ${o.request.body?.slice(0, 80) ?? ''}`);
  expect({ seed, acceptedMalformed: accepted.slice(0, 20) }).toEqual({ seed, acceptedMalformed: [] });
  expect(after).toEqual(before);
  expect(Object.keys(doc.paths).length).toBeGreaterThanOrEqual(10);
  expect(requests.length).toBeGreaterThan(500);
});

test('only the gateway and the services are published, and only on 127.0.0.1', () => {
  const bindings = docker('ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Ports}}')
    .split(/\n|, /)
    .filter((b) => b.includes('->'));

  expect(bindings).toHaveLength(APP_NAMES.length);
  for (const binding of bindings) expect(binding).toMatch(/^127\.0\.0\.1:\d+->\d+\/tcp$/);
});

test('compose:down removes every container, network and volume of the stack', () => {
  const down = sh('node', ['tools/containers/compose.mjs', 'down'], { env, allowFail: true });

  expect({ status: down.status, out: down.status === 0 ? '' : down.out }).toEqual({ status: 0, out: '' });
  expect(projectObjects()).toEqual({ containers: '', networks: '', volumes: '' });
});
