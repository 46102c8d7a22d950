import { APP_NAMES } from '../test/support';
import { docker, freePort, readState, sh } from './docker';

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
  env = { ...process.env, ...state.baseImages, ...ports, COMPOSE_PROJECT_NAME: project, IMAGE_REGISTRY: state.registry, IMAGE_TAG: state.tag };
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
