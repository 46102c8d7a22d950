import { type KeyObject, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { generateEventKeySet } from '@cloudretail/events';
import { APPS, APP_NAMES, type AppConfig, appConfigs, appsWithoutConfig, configError, workspaceRoot } from './support';
import { parseDockerfile } from './dockerfile';

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string; target?: string; args?: Record<string, string> };
  ports?: string[];
  environment?: Record<string, string | number>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[] };
  volumes?: string[];
  develop?: { watch: { action: string; path: string; target?: string }[] };
}
interface Compose {
  services: Record<string, ComposeService>;
}

const load = (file: string): Compose => parse(readFileSync(path.join(workspaceRoot, file), 'utf8'), { merge: true });
const compose = load('docker-compose.yml');
const dev = load('docker-compose.dev.yml');
const kafka = load('docker-compose.kafka.yml');
const monitoring = load('docker-compose.monitoring.yml');

/** What `npm run compose:up` puts in .data/compose/secrets.env: the `${VAR:?…}` values. */
const secrets: Record<string, string> = (() => {
  const keys = generateEventKeySet(['event-bus']);
  const signing = Object.entries(keys.signingKeys).map(([service, key]) => [`${service.toUpperCase().replace(/-/g, '_')}_EVENT_SIGNING_KEY`, key]);
  const jwt = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const line = (key: KeyObject, type: 'pkcs8' | 'spki') => (key.export({ format: 'pem', type }) as string).trim().replace(/\n/g, '\\n');
  return { POSTGRES_PASSWORD: 'a-generated-password', EVENT_VERIFY_KEYS: keys.verifyKeys, ...Object.fromEntries(signing), JWT_PRIVATE_KEY: line(jwt.privateKey, 'pkcs8'), JWT_PUBLIC_KEY: line(jwt.publicKey, 'spki') };
})();

/** `${VAR:-default}` as compose resolves it with VAR unset, `${VAR:?…}` with the secrets file; `$$` is a literal `$`. */
const interpolate = (value: string | number) =>
  String(value)
    .replace(/\$\{\w+:-([^}]*)\}/g, '$1')
    .replace(/\$\{(\w+):\?[^}]*\}/g, (_m, name: string) => {
      if (!(name in secrets)) throw new Error(`compose requires ${name}, which compose:up does not make`);
      return secrets[name];
    })
    .replace(/\$\$/g, '$');
const envOf = (service: ComposeService) => Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(v)]));

let configs: AppConfig[];
beforeAll(async () => {
  configs = await appConfigs();
  const missing = appsWithoutConfig();
  if (missing.length) console.info(`compose environment not checked against a schema yet for: ${missing.join(', ')}`);
});

test('every app is a compose service built from its own Dockerfile runtime target, with its port published', () => {
  for (const app of APP_NAMES) {
    const service = compose.services[app];
    const stages = parseDockerfile(path.join(workspaceRoot, service.build!.dockerfile)).stages.map((s) => s.name);

    expect({ app, dockerfile: service.build?.dockerfile, context: service.build?.context }).toEqual({ app, dockerfile: `apps/${app}/Dockerfile`, context: '.' });
    expect(stages).toContain(service.build!.target);
    expect({ app, ports: service.ports?.map(interpolate) }).toEqual({ app, ports: [`127.0.0.1:${APPS[app].port}:${APPS[app].port}`] });
    expect({ app, image: service.image }).toEqual({ app, image: `\${IMAGE_REGISTRY:-cloudretail}/${app}:\${IMAGE_TAG:-local}` });
    expect({ app, args: service.build?.args }).toEqual({ app, args: { NODE_IMAGE: expect.stringMatching(/^\$\{NODE_IMAGE:-node:24\./), DEBIAN_IMAGE: expect.stringMatching(/^\$\{DEBIAN_IMAGE:-debian:/) } });
    expect({ app, PORT: envOf(service).PORT }).toEqual({ app, PORT: String(APPS[app].port) });
  }
});

test('the published ports agree with the default PORT of each app config', () => {
  for (const { app, vars } of configs) expect({ app, port: vars.find((v) => v.variable === 'PORT')?.default }).toEqual({ app, port: APPS[app].port });
});

test('every variable compose sets exists in the app config schema, every required one is set, and the values parse', () => {
  for (const { app, schema, vars } of configs) {
    const known = new Set(vars.map((v) => v.variable));
    for (const [file, doc] of [['docker-compose.yml', compose], ['docker-compose.dev.yml', dev]] as const) {
      const env = envOf(doc.services[app] ?? {});
      expect({ file, app, unknown: Object.keys(env).filter((k) => !known.has(k)) }).toEqual({ file, app, unknown: [] });
    }
    const env = { ...envOf(compose.services[app]), ...envOf(dev.services[app] ?? {}) };
    expect({ app, missing: vars.filter((v) => v.required && !(v.variable in envOf(compose.services[app]))).map((v) => v.variable) }).toEqual({ app, missing: [] });
    expect({ app, error: configError(schema, envOf(compose.services[app])) }).toEqual({ app, error: '' });
    expect({ app, devError: configError(schema, env) }).toEqual({ app, devError: '' });
  }
});

test('each data service uses its own database, and the Postgres init script creates it', () => {
  const init = readFileSync(path.join(workspaceRoot, 'infrastructure/docker/postgres/init-databases.sh'), 'utf8');
  const mounts = compose.services.postgres.volumes ?? [];

  expect(mounts.some((m) => m.startsWith('./infrastructure/docker/postgres/init-databases.sh:/docker-entrypoint-initdb.d/'))).toBe(true);
  for (const app of APP_NAMES) {
    const url = envOf(compose.services[app]).DATABASE_URL;
    const database = APPS[app].database;
    if (!database) {
      expect(url).toBeUndefined();
      continue;
    }
    expect(new URL(url).pathname).toBe(`/${database}`);
    expect(new URL(url).hostname).toBe('postgres');
    expect(init).toContain(database);
  }
});

test('every depends_on target exists and waits for a healthcheck the target defines', () => {
  for (const [name, service] of Object.entries(compose.services)) {
    for (const [target, { condition }] of Object.entries(service.depends_on ?? {})) {
      expect({ name, target, exists: target in compose.services }).toEqual({ name, target, exists: true });
      expect(condition).toBe('service_healthy');
      expect({ target, healthcheck: (compose.services[target].healthcheck?.test?.length ?? 0) > 0 }).toEqual({ target, healthcheck: true });
    }
  }
  expect(Object.keys(compose.services.postgres.depends_on ?? {})).toEqual([]);
});

test('the apps readiness healthchecks probe /health/ready on their own port (the gateway: its admin port when set)', () => {
  for (const app of APP_NAMES) {
    const probe = compose.services[app].healthcheck?.test?.join(' ') ?? '';
    expect({ app, probe }).toEqual({ app, probe: expect.stringContaining("'/health/ready'") });
    expect({ app, port: /'http:\/\/127\.0\.0\.1:' \+ (\d+|\(process\.env\.ADMIN_PORT \|\| process\.env\.PORT\)) \+/.exec(probe)?.[1] }).toEqual({
      app,
      port: app === 'api-gateway' ? '(process.env.ADMIN_PORT || process.env.PORT)' : String(APPS[app].port),
    });
  }
});

test('the default stack is what a laptop needs: the seven apps, Postgres and Redis, with Redis Streams as the transport', () => {
  expect(Object.keys(compose.services).sort()).toEqual([...APP_NAMES, 'postgres', 'redis'].sort());
  for (const app of APP_NAMES) if (APPS[app].database) expect({ app, transport: envOf(compose.services[app]).EVENT_TRANSPORT }).toEqual({ app, transport: 'redis' });
  // Compose v2 and docker-compose 1.29 alike: no top-level name (COMPOSE_PROJECT_NAME), no develop.watch.
  for (const file of ['docker-compose.yml', 'docker-compose.kafka.yml', 'docker-compose.monitoring.yml']) {
    const doc = load(file) as Compose & { name?: string };
    expect({ file, name: doc.name }).toEqual({ file, name: undefined });
    expect({ file, watch: Object.values(doc.services).some((s) => s.develop) }).toEqual({ file, watch: false });
  }
  // Nothing published beyond the apps, and nothing on every interface.
  expect(compose.services.postgres.ports).toBeUndefined();
  expect(compose.services.redis.ports).toBeUndefined();
});

test('Kafka (opt-in) runs in KRaft mode with its log dir on its volume, and every data service uses it', () => {
  const broker = envOf(kafka.services.kafka);

  expect(broker.KAFKA_PROCESS_ROLES).toBe('broker,controller');
  expect(kafka.services.kafka.volumes).toContain(`kafka-data:${broker.KAFKA_LOG_DIRS}`);
  expect(Object.keys(kafka.services).some((s) => s.includes('zookeeper'))).toBe(false);
  for (const app of APP_NAMES.filter((a) => APPS[a].database)) {
    expect({ app, transport: envOf(kafka.services[app]).EVENT_TRANSPORT, brokers: envOf(kafka.services[app]).KAFKA_BROKERS }).toEqual({ app, transport: 'kafka', brokers: 'kafka:9092' });
  }
});

test('third-party images are pinned to exact versions, and each can be replaced by a variable (air-gapped builds)', () => {
  for (const doc of [compose, kafka, monitoring]) {
    for (const [name, service] of Object.entries(doc.services)) {
      if (service.build || !service.image) continue;
      expect({ name, image: service.image }).toEqual({ name, image: expect.stringMatching(/^\$\{[A-Z_]+_IMAGE:-[\w./-]+:v?\d+\.\d+(\.\d+)?(-[\w.]+)?\}$/) });
    }
  }
});

test('Prometheus scrapes every app where compose runs it, and Grafana gets its datasource and dashboard', () => {
  const prometheus = parse(readFileSync(path.join(workspaceRoot, 'infrastructure/monitoring/prometheus.yml'), 'utf8'));
  const targets = prometheus.scrape_configs.flatMap((j: { metrics_path: string; static_configs: { targets: string[] }[] }) =>
    j.metrics_path === '/metrics' ? j.static_configs.flatMap((c) => c.targets) : [],
  );

  // The gateway's metrics are on its admin port (ADMIN_PORT), the others' on their own port.
  expect(targets.sort()).toEqual(APP_NAMES.map((app) => `${app}:${app === 'api-gateway' ? envOf(compose.services[app]).ADMIN_PORT : APPS[app].port}`).sort());
  for (const volume of [...(monitoring.services.prometheus.volumes ?? []), ...(monitoring.services.grafana.volumes ?? [])].filter((v) => v.startsWith('./'))) {
    expect(existsSync(path.join(workspaceRoot, volume.split(':')[0]))).toBe(true);
  }
});

test('the development override only adds to existing services: development target, source sync and rebuild on lockfile change', () => {
  for (const [name, service] of Object.entries(dev.services)) {
    expect(name in compose.services).toBe(true);
    expect(service.build?.target).toBe('development');
    const watch = service.develop?.watch ?? [];
    expect(watch).toEqual(
      expect.arrayContaining([
        { action: 'sync', path: `./apps/${name}/src`, target: `/workspace/apps/${name}/src` },
        expect.objectContaining({ action: 'sync', path: './libs', target: '/workspace/libs' }),
        { action: 'rebuild', path: './package-lock.json' },
      ]),
    );
    for (const w of watch) expect(existsSync(path.join(workspaceRoot, w.path))).toBe(w.path.startsWith('./apps/') ? existsSync(path.join(workspaceRoot, 'apps', name, 'src')) : true);
  }
  expect(Object.keys(dev.services).sort()).toEqual([...APP_NAMES].sort());
});
