import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseDocument, stringify } from 'yaml';
import {
  APPS,
  APP_NAMES,
  type AppConfig,
  type AppName,
  CALLS,
  type K8sObject,
  SECRET_STAND_INS,
  appConfigs,
  appsWithoutConfig,
  configError,
  envFileKeys,
  filesUnder,
  k8sDir,
  kustomize,
  parseManifests,
  requireTool,
  run,
  validateManifests,
  workspaceRoot,
} from './support';

/** Overlays that are deployed, and where each one lists its components. */
const OVERLAYS: Record<string, { componentsIn: string; namespace: string; logLevel: string; origins: string; minReplicas: number }> = {
  staging: { componentsIn: 'overlays/staging', namespace: 'cloudretail-staging', logLevel: 'debug', origins: 'https://staging.cloudretail.com', minReplicas: 1 },
  'production/eu-west': { componentsIn: 'overlays/production/base', namespace: 'cloudretail', logLevel: 'warn', origins: 'https://cloudretail.com,https://www.cloudretail.com', minReplicas: 3 },
  'production/us-east': { componentsIn: 'overlays/production/base', namespace: 'cloudretail', logLevel: 'warn', origins: 'https://cloudretail.com,https://www.cloudretail.com', minReplicas: 3 },
};
/**
 * Components an overlay can list. progressive-delivery (Argo Rollouts for every app, what the
 * overlays use) and blue-green (the plain-Kubernetes Service switch for clusters without Rollouts)
 * both release the gateway, so they exclude each other.
 */
const COMPONENTS = ['progressive-delivery'];
/** Opt-in components: the in-cluster data layer, and A/B testing of the gateway. */
const COMBINATIONS = [
  [],
  ['blue-green'],
  ['progressive-delivery'],
  ['progressive-delivery', 'data-layer'],
  ['progressive-delivery', 'ab-testing'],
  ['blue-green', 'data-layer'],
  ['blue-green', 'ab-testing'],
  ['progressive-delivery', 'data-layer', 'ab-testing'],
];
/** What the policy tests run on: each overlay as deployed, and the opt-in combinations on top of them. */
const POLICY_CASES: Record<string, { overlay: string; components?: string[] }> = {
  ...Object.fromEntries(Object.keys(OVERLAYS).map((o) => [o, { overlay: o }])),
  'staging + data-layer + ab-testing': { overlay: 'staging', components: ['progressive-delivery', 'data-layer', 'ab-testing'] },
  'production/eu-west + ab-testing': { overlay: 'production/eu-west', components: ['progressive-delivery', 'ab-testing'] },
  'staging + blue-green + ab-testing': { overlay: 'staging', components: ['blue-green', 'ab-testing'] },
};
const usesRollouts = (name: string) => (POLICY_CASES[name].components ?? COMPONENTS).includes('progressive-delivery');
/** Where each app answers its probes: the gateway on its admin port (ADMIN_PORT, 9080), the others on the app port. */
const PROBE_PORT = (app: AppName) => (app === 'api-gateway' ? 'admin' : 'http');
const IMAGE = (app: AppName) => new RegExp(`^ghcr\\.io/cloudretail/${app}(:\\d+\\.\\d+\\.\\d+|@sha256:[0-9a-f]{64})$`);
const PROBES = { startupProbe: '/health/startup', readinessProbe: '/health/ready', livenessProbe: '/health/live' } as const;

// Loose shapes for walking rendered pod specs (the strict schemas already checked the structure).
interface Container {
  name: string;
  image: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  env?: { name: string; value?: string }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: { name: string; mountPath: string }[];
  lifecycle?: { preStop?: unknown };
  [probe: string]: unknown;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
  volumes?: { name: string; emptyDir?: object }[];
  affinity?: { podAntiAffinity?: object };
  topologySpreadConstraints?: object[];
}
interface Workload {
  obj: K8sObject;
  app: AppName;
  labels: Record<string, string>;
  pod: PodSpec;
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

const ofKind = (objs: K8sObject[], kind: string) => objs.filter((o) => o.kind === kind);
const named = (objs: K8sObject[], kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name);

/** Deployments and Rollouts with the pod spec they run (a Rollout with workloadRef runs its Deployment's). */
function workloads(objs: K8sObject[]): Workload[] {
  return objs
    .filter((o) => o.kind === 'Deployment' || o.kind === 'Rollout')
    .map((obj) => {
      const template = obj.spec.workloadRef ? named(objs, 'Deployment', obj.spec.workloadRef.name)!.spec.template : obj.spec.template;
      return { obj, app: template.metadata.labels['app.kubernetes.io/name'] as AppName, labels: template.metadata.labels, pod: template.spec as PodSpec };
    });
}

/** The environment a container gets from its ConfigMaps (later sources win, as in Kubernetes). */
function configEnv(objs: K8sObject[], container: Container): { env: Record<string, string>; secretNames: string[] } {
  const env: Record<string, string> = {};
  const secretNames: string[] = [];
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, named(objs, 'ConfigMap', source.configMapRef.name)?.data ?? { missing: source.configMapRef.name });
    if (source.secretRef) secretNames.push(source.secretRef.name);
  }
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return { env, secretNames };
}

const secretTemplate = (secretName: string) => path.join(k8sDir, 'secrets', `${secretName.replace(/-secrets$/, '')}.env.example`);

/** A copy of infrastructure/kubernetes with the given components in an overlay, rendered. */
function renderWith(overlay: string, components: string[], mutate?: (tmp: string) => void): string {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'k8s-'));
  try {
    cpSync(k8sDir, tmp, { recursive: true });
    const file = path.join(tmp, OVERLAYS[overlay].componentsIn, 'kustomization.yaml');
    const doc = parseDocument(readFileSync(file, 'utf8'));
    const rel = path.relative(path.dirname(file), path.join(tmp, 'components'));
    if (components.length) doc.set('components', components.map((c) => `${rel}/${c}`));
    else doc.delete('components');
    writeFileSync(file, doc.toString());
    mutate?.(tmp);
    return kustomize(path.join(tmp, 'overlays', overlay));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

let configs: AppConfig[];
const rendered: Record<string, K8sObject[]> = {};

beforeAll(async () => {
  requireTool('kubectl');
  configs = await appConfigs();
  for (const [name, { overlay, components }] of Object.entries(POLICY_CASES)) {
    rendered[name] = parseManifests(components ? renderWith(overlay, components) : kustomize(path.join(k8sDir, 'overlays', overlay)));
  }
  const missing = appsWithoutConfig();
  if (missing.length) console.info(`config-schema checks skipped for apps without src/config.ts yet: ${missing.join(', ')}`);
});

describe('rendering and strict schema validation', () => {
  test.each(Object.keys(OVERLAYS))('when overlay %s is rendered, then every object validates against the strict schemas', (overlay) => {
    const text = kustomize(path.join(k8sDir, 'overlays', overlay));

    expect(validateManifests(text)).toEqual([]);
    expect(parseManifests(text).length).toBeGreaterThan(50);
  });

  const cases = Object.keys(OVERLAYS).flatMap((overlay) => COMBINATIONS.map((combo) => [overlay, combo] as const));
  test.each(cases)('when overlay %s is rendered with components %j, then it validates and has a workload per app', (overlay, combo) => {
    const text = renderWith(overlay, combo);
    const objs = parseManifests(text);

    expect(validateManifests(text)).toEqual([]);
    expect(new Set(workloads(objs).map((w) => w.app))).toEqual(new Set(APP_NAMES));
    expect(ofKind(objs, 'Rollout').length).toBe(combo.includes('progressive-delivery') ? APP_NAMES.length : 0);
    expect(!!named(objs, 'Deployment', 'api-gateway-green')).toBe(combo.includes('blue-green'));
  });

  test('when blue-green and progressive-delivery are listed together, then kustomize refuses (both release the gateway)', () => {
    expect(() => renderWith('staging', ['progressive-delivery', 'blue-green'])).toThrow(/api-gateway-preview/);
  });

  test('when a patch misspells replicas as replicsa, then kustomize still renders but validation rejects that field', () => {
    const text = renderWith('staging', COMPONENTS, (tmp) => {
      const file = path.join(tmp, 'overlays/staging/kustomization.yaml');
      writeFileSync(file, `${readFileSync(file, 'utf8')}\n  - target:\n      kind: Deployment\n      name: product-service\n    patch: |-\n      - op: add\n        path: /spec/replicsa\n        value: 3\n`);
    });

    const errors = validateManifests(text);

    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^Deployment\/product-service \/spec must NOT have additional properties .*replicsa/);
  });

  test('when a probe field is misspelled inside a Rollout-free Deployment, then validation names the container', () => {
    const deployment = parseManifests(readFileSync(path.join(k8sDir, 'base/apps/user-service/deployment.yaml'), 'utf8'))[0];
    deployment.spec.template.spec.containers[0].readinessProbe.initialDelaySecond = 5;

    expect(validateManifests(stringify(deployment))).toEqual([expect.stringContaining('/spec/template/spec/containers/0/readinessProbe must NOT have additional properties')]);
  });

  test.each(Object.entries(OVERLAYS))('when overlay %s is rendered, then namespace, log level, origins, autoscaling and image tags are its own', (overlay, expected) => {
    const objs = rendered[overlay];

    expect(new Set(objs.filter((o) => o.kind !== 'Namespace').map((o) => o.metadata.namespace))).toEqual(new Set([expected.namespace]));
    expect(ofKind(objs, 'Namespace').map((o) => o.metadata.name)).toEqual([expected.namespace]);
    expect(ofKind(objs, 'ConfigMap').find((c) => c.metadata.name.startsWith('common-config-'))!.data!.LOG_LEVEL).toBe(expected.logLevel);
    expect(ofKind(objs, 'ConfigMap').find((c) => c.metadata.name.startsWith('api-gateway-config-'))!.data!.ALLOWED_ORIGINS).toBe(expected.origins);
    expect(new Set(ofKind(objs, 'HorizontalPodAutoscaler').map((h) => h.spec.minReplicas))).toEqual(new Set([expected.minReplicas]));
    for (const w of workloads(objs)) {
      // A promoted digest, or the seed release's tag before the first promotion; never latest.
      for (const c of [...w.pod.containers, ...(w.pod.initContainers ?? [])]) expect(c.image).toMatch(IMAGE(w.app));
    }
  });

  test('when the production regions are rendered, then they differ only in region-specific values', () => {
    const hosts = (overlay: string) => named(rendered[overlay], 'Ingress', 'api-gateway')!.spec.rules.map((r: { host: string }) => r.host);

    expect(hosts('production/eu-west')).toEqual(['api.cloudretail.com', 'eu-west.api.cloudretail.com']);
    expect(hosts('production/us-east')).toEqual(['api.cloudretail.com', 'us-east.api.cloudretail.com']);
    const cidr = (overlay: string) => named(rendered[overlay], 'NetworkPolicy', 'allow-postgres-egress')!.spec.egress[0].to[0].ipBlock.cidr;
    expect(new Set(Object.keys(OVERLAYS).map(cidr)).size).toBe(3);
  });
});

describe.each(Object.keys(POLICY_CASES))('policies of %s', (name) => {
  const objs = () => rendered[name];

  test('every app runs as exactly one Argo Rollout (or, without Rollouts, one Deployment), plus the idle blue-green colour and the A/B variant', () => {
    const primary = workloads(objs()).filter((w) => w.obj.kind === 'Rollout' || !ofKind(objs(), 'Rollout').some((r) => r.spec.workloadRef?.name === w.obj.metadata.name));
    const extras = ['api-gateway-green', 'api-gateway-b'].filter((n) => named(objs(), 'Deployment', n));

    expect(primary.map((w) => `${w.obj.kind}/${w.obj.metadata.name}`).sort()).toEqual(
      [...APP_NAMES.map((app) => `${usesRollouts(name) ? 'Rollout' : 'Deployment'}/${app}`), ...extras.map((n) => `Deployment/${n}`)].sort(),
    );
  });

  test('every workload has the three probes on the app port, resources, and a hardened security context', () => {
    for (const { obj, app, pod } of workloads(objs())) {
      const main = pod.containers[0];
      const where = `${obj.kind}/${obj.metadata.name}`;
      const ports = [expect.objectContaining({ name: 'http', containerPort: APPS[app].port }), ...(app === 'api-gateway' ? [expect.objectContaining({ name: 'admin', containerPort: 9080 })] : [])];
      expect({ where, ports: main.ports }).toEqual({ where, ports });
      for (const [probe, probePath] of Object.entries(PROBES)) {
        expect({ where, probe, httpGet: (main[probe] as { httpGet?: object })?.httpGet }).toEqual({ where, probe, httpGet: { path: probePath, port: PROBE_PORT(app) } });
      }
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.automountServiceAccountToken).toBe(false);
      expect(pod.affinity?.podAntiAffinity).toBeDefined();
      expect(pod.topologySpreadConstraints?.length).toBeGreaterThan(0);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        expect({ where, container: c.name, resources: c.resources }).toEqual({
          where,
          container: c.name,
          resources: { requests: { cpu: expect.anything(), memory: expect.anything() }, limits: expect.objectContaining({ memory: expect.anything() }) },
        });
        expect({ where, container: c.name, securityContext: c.securityContext }).toEqual({
          where,
          container: c.name,
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
        });
        // A read-only root filesystem needs a writable /tmp.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        expect(pod.volumes?.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
      }
    }
  });

  test('every rollout replaces pods without losing capacity', () => {
    for (const { obj } of workloads(objs())) {
      if (obj.kind === 'Deployment') expect({ name: obj.metadata.name, strategy: obj.spec.strategy }).toMatchObject({ strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0 } } });
      // Blue-green brings the whole new ReplicaSet up before any traffic moves.
      else if (obj.spec.strategy.blueGreen) expect(!!obj.spec.strategy.blueGreen.prePromotionAnalysis || obj.spec.strategy.blueGreen.autoPromotionEnabled === false).toBe(true);
      else expect(obj.spec.strategy.canary.maxUnavailable).toBe(0);
    }
  });

  test('the grace period outlasts the shutdown delay plus the drain timeout, and no preStop hook adds to it unseen', () => {
    for (const { obj, pod } of workloads(objs())) {
      const main = pod.containers[0];
      const { env } = configEnv(objs(), main);
      const delay = Number(env.SHUTDOWN_DELAY_MS ?? 5000);
      const timeout = Number(env.SHUTDOWN_TIMEOUT_MS ?? 20000);

      expect({ name: obj.metadata.name, preStop: main.lifecycle?.preStop }).toEqual({ name: obj.metadata.name, preStop: undefined });
      // Closing Redis, Kafka and the pool after the drain needs a few seconds of its own.
      expect((pod.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThanOrEqual(delay + timeout + 5000);
    }
  });

  test('data services migrate in an init container with the app image, and do not migrate again at start-up', () => {
    for (const { obj, app, pod } of workloads(objs())) {
      const init = pod.initContainers ?? [];
      if (!APPS[app].database) {
        expect(init).toEqual([]);
        continue;
      }
      expect({ name: obj.metadata.name, init: init.map((c) => ({ image: c.image, args: c.args })) }).toEqual({
        name: obj.metadata.name,
        init: [{ image: pod.containers[0].image, args: ['node', 'main.js', 'migrate', 'up'] }],
      });
      expect(configEnv(objs(), init[0]).env).toEqual(configEnv(objs(), pod.containers[0]).env);
      expect(configEnv(objs(), pod.containers[0]).env.MIGRATE_ON_START).toBe('false');
    }
  });

  test('every workload has a PodDisruptionBudget and an autoscaler on CPU and memory', () => {
    const rollouts = ofKind(objs(), 'Rollout');
    for (const { obj, labels } of workloads(objs())) {
      const managedBy = rollouts.find((r) => r.spec.workloadRef?.name === obj.metadata.name);
      const owner = managedBy ?? obj;
      const hpa = ofKind(objs(), 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.kind === owner.kind && h.spec.scaleTargetRef.name === owner.metadata.name);
      const pdbs = ofKind(objs(), 'PodDisruptionBudget').filter((p) => matches(p.spec.selector.matchLabels, labels));

      expect({ workload: obj.metadata.name, pdbs: pdbs.length }).toEqual({ workload: obj.metadata.name, pdbs: 1 });
      // The A/B variant runs a fixed number of replicas for opted-in clients only.
      if ((obj.kind === 'Rollout' || !managedBy) && obj.spec.replicas === undefined) {
        expect({ workload: owner.metadata.name, hpa: hpa?.spec.scaleTargetRef.apiVersion }).toEqual({
          workload: owner.metadata.name,
          hpa: owner.kind === 'Rollout' ? 'argoproj.io/v1alpha1' : 'apps/v1',
        });
        expect(hpa!.spec.metrics.map((m: { resource: { name: string } }) => m.resource.name).sort()).toEqual(['cpu', 'memory']);
      }
    }
  });

  test('every Service selects the pods of a workload (or a data-layer StatefulSet) and targets a port they expose', () => {
    const statefulSets = ofKind(objs(), 'StatefulSet').map((o) => ({ labels: o.spec.template.metadata.labels as Record<string, string>, pod: o.spec.template.spec as PodSpec }));
    const ws = [...workloads(objs()), ...statefulSets];
    for (const svc of ofKind(objs(), 'Service')) {
      const selected = ws.filter((w) => matches(svc.spec.selector, w.labels));
      expect({ service: svc.metadata.name, selects: selected.length > 0 }).toEqual({ service: svc.metadata.name, selects: true });
      for (const port of svc.spec.ports) {
        expect(selected.every((w) => w.pod.containers[0].ports!.some((p) => p.name === port.targetPort || p.containerPort === port.targetPort))).toBe(true);
      }
    }
  });

  test('each app gets the service accounts, ConfigMaps and Secrets it names, and Secret keys are templated in Git without values', () => {
    for (const { obj, pod } of workloads(objs())) {
      const sa = named(objs(), 'ServiceAccount', pod.serviceAccountName!);
      expect({ workload: obj.metadata.name, automount: sa?.automountServiceAccountToken }).toEqual({
        workload: obj.metadata.name,
        automount: false,
      });
      const { env, secretNames } = configEnv(objs(), pod.containers[0]);
      expect(env.missing).toBeUndefined();
      for (const secret of secretNames) {
        expect(existsSync(secretTemplate(secret))).toBe(true);
        expect(envFileKeys(secretTemplate(secret)).length).toBeGreaterThan(0);
      }
    }
    // Secrets are created outside Git (README): the rendered output holds none.
    expect(ofKind(objs(), 'Secret')).toEqual([]);
    for (const file of filesUnder(path.join(k8sDir, 'secrets'), (n) => n.endsWith('.env.example'))) {
      expect({ file, values: readFileSync(file, 'utf8').split('\n').filter((l) => /^[A-Z_]+=.+/.test(l)) }).toEqual({ file, values: [] });
    }
  });

  test('every ConfigMap key an app reads exists in its config schema, and ConfigMap plus Secret keys make a valid configuration', () => {
    for (const { app, schema, vars } of configs) {
      const known = new Set(vars.map((v) => v.variable));
      for (const { obj, pod } of workloads(objs()).filter((w) => w.app === app)) {
        const { env, secretNames } = configEnv(objs(), pod.containers[0]);
        const secretKeys = secretNames.flatMap((s) => envFileKeys(secretTemplate(s)));
        const where = `${obj.kind}/${obj.metadata.name}`;

        expect({ where, unknownKeys: [...Object.keys(env), ...secretKeys].filter((k) => !known.has(k)) }).toEqual({ where, unknownKeys: [] });
        const missing = vars.filter((v) => v.required && !(v.variable in env) && !secretKeys.includes(v.variable)).map((v) => v.variable);
        expect({ where, missingRequired: missing }).toEqual({ where, missingRequired: [] });
        const standIns = Object.fromEntries(secretKeys.map((k) => [k, SECRET_STAND_INS[k] ?? 'stand-in-value-0123456789']));
        expect({ where, configError: configError(schema, { ...standIns, ...env }) }).toEqual({ where, configError: '' });
        expect({ where, port: Number(env.PORT) }).toEqual({ where, port: vars.find((v) => v.variable === 'PORT')!.default });
      }
    }
  });

  test('the Ingress terminates TLS for every host, rate-limits, and routes only to the gateway', () => {
    const canary = (i: K8sObject) => i.metadata.annotations?.['nginx.ingress.kubernetes.io/canary'] === 'true';
    const ingresses = ofKind(objs(), 'Ingress').filter((i) => !canary(i));
    expect(ingresses).toHaveLength(1);
    const [ingress] = ingresses;
    // An A/B canary Ingress has the same hosts and TLS and sends opted-in requests to variant B only.
    for (const b of ofKind(objs(), 'Ingress').filter(canary)) {
      expect(b.spec.tls).toEqual(ingress.spec.tls);
      expect(b.spec.rules.map((r: { host: string }) => r.host)).toEqual(ingress.spec.rules.map((r: { host: string }) => r.host));
      expect(new Set(b.spec.rules.flatMap((r: { http: { paths: { backend: { service: { name: string } } }[] } }) => r.http.paths.map((p) => p.backend.service.name)))).toEqual(new Set(['api-gateway-b']));
      expect(b.metadata.annotations).toMatchObject({ 'nginx.ingress.kubernetes.io/canary-by-header': 'X-Variant', 'nginx.ingress.kubernetes.io/canary-by-cookie': 'variant', 'nginx.ingress.kubernetes.io/canary-weight': '0' });
    }
    const tlsHosts = ingress.spec.tls.flatMap((t: { hosts: string[] }) => t.hosts);
    const rules = ingress.spec.rules as { host: string; http: { paths: { backend: { service: { name: string; port: { name: string } } } }[] } }[];

    expect(rules.every((r) => tlsHosts.includes(r.host))).toBe(true);
    expect(new Set(rules.flatMap((r) => r.http.paths.map((p) => p.backend.service.name)))).toEqual(new Set(['api-gateway']));
    expect(ingress.metadata.annotations).toMatchObject({
      'nginx.ingress.kubernetes.io/limit-rps': expect.stringMatching(/^\d+$/),
      'nginx.ingress.kubernetes.io/limit-connections': expect.stringMatching(/^\d+$/),
      'nginx.ingress.kubernetes.io/force-ssl-redirect': 'true',
    });
  });

  test('network policies deny by default and allow exactly the real edges between apps', () => {
    const policies = ofKind(objs(), 'NetworkPolicy');
    const ws = workloads(objs());
    const podLabels = (app: AppName) => ws.find((w) => w.app === app)!.labels;
    const selecting = (labels: Record<string, string>, type: 'Ingress' | 'Egress') =>
      policies.filter((p) => p.spec.policyTypes.includes(type) && selects(p.spec.podSelector, labels));
    const portOk = (ports: { port: number | string }[] | undefined, app: AppName) => !ports || ports.some((p) => p.port === APPS[app].port || p.port === 'http');
    const allowed = (from: AppName, to: AppName) =>
      selecting(podLabels(from), 'Egress').some((p) =>
        (p.spec.egress ?? []).some((r: Rule) => (r.to ?? []).some((peer) => !peer.namespaceSelector && !peer.ipBlock && selects(peer.podSelector, podLabels(to))) && portOk(r.ports, to)),
      ) &&
      selecting(podLabels(to), 'Ingress').some((p) =>
        (p.spec.ingress ?? []).some((r: Rule) => (r.from ?? []).some((peer) => !peer.namespaceSelector && !peer.ipBlock && selects(peer.podSelector, podLabels(from))) && portOk(r.ports, to)),
      );

    const defaultDeny = named(objs(), 'NetworkPolicy', 'default-deny-all')!;
    expect(defaultDeny.spec).toEqual({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });
    const actual = APP_NAMES.flatMap((from) => APP_NAMES.filter((to) => from !== to && allowed(from, to)).map((to) => `${from} -> ${to}`));
    const expected = APP_NAMES.flatMap((from) => CALLS[from].map((to) => `${from} -> ${to}`));
    expect(actual.sort()).toEqual(expected.sort());

    // From outside the namespace: the ingress controller reaches only the gateway, Prometheus reaches every app.
    const fromNamespace = (app: AppName, namespace: string) =>
      selecting(podLabels(app), 'Ingress').some((p) =>
        (p.spec.ingress ?? []).some((r: Rule) => (r.from ?? []).some((peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === namespace)),
      );
    expect(APP_NAMES.filter((app) => fromNamespace(app, 'ingress-nginx'))).toEqual(['api-gateway']);
    expect(APP_NAMES.filter((app) => fromNamespace(app, 'monitoring'))).toEqual(APP_NAMES);
    // …on the port that serves /metrics (the gateway's admin port), and the ingress controller on the public one.
    const portsFrom = (app: AppName, namespace: string) =>
      selecting(podLabels(app), 'Ingress').flatMap((p) =>
        (p.spec.ingress ?? []).filter((r: Rule) => (r.from ?? []).some((peer) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === namespace)).flatMap((r: Rule) => r.ports!.map((x) => x.port)),
      );
    for (const app of APP_NAMES) expect({ app, prometheus: portsFrom(app, 'monitoring') }).toEqual({ app, prometheus: [PROBE_PORT(app)] });
    expect(portsFrom('api-gateway', 'ingress-nginx')).toEqual(['http']);

    // Egress beyond the namespace: DNS for all, data stores by port.
    const egressPorts = (app: AppName) =>
      selecting(podLabels(app), 'Egress').flatMap((p) => (p.spec.egress ?? []).filter((r: Rule) => (r.to ?? []).some((peer) => peer.ipBlock || peer.namespaceSelector)).flatMap((r: Rule) => r.ports!.map((x) => x.port)));
    for (const app of APP_NAMES) {
      expect({ app, ports: new Set(egressPorts(app)) }).toEqual({ app, ports: new Set(APPS[app].database ? [53, 5432, 6379, 9092] : [53, 6379]) });
    }
  });

  test('Prometheus scrapes every app exactly once per pod, on the port that serves /metrics, and the alert rules cover errors, latency and sagas', () => {
    const alerts = ofKind(objs(), 'PrometheusRule').flatMap((r) => r.spec.groups.flatMap((g: { rules: { alert?: string }[] }) => g.rules.map((x) => x.alert)));

    expect(scrapesPerApp(objs())).toEqual(Object.fromEntries(APP_NAMES.map((app) => [app, [PROBE_PORT(app)]])));
    expect(alerts).toEqual(expect.arrayContaining(['HighErrorRatio', 'HighP99Latency', 'SagaFailures', 'EventConsumerLag']));
  });

  test('every ServiceAccount pulls images with the registry pull secret', () => {
    for (const { pod } of workloads(objs())) {
      const sa = named(objs(), 'ServiceAccount', pod.serviceAccountName!)!;
      expect({ sa: sa.metadata.name, pull: (sa as unknown as { imagePullSecrets?: object[] }).imagePullSecrets }).toEqual({ sa: sa.metadata.name, pull: [{ name: 'ghcr-pull' }] });
    }
  });

  if (usesRollouts(name)) test('progressive delivery: back-end canaries analysed on error ratio and p99, the gateway blue-green through a preview Service with smoke and SLO analysis', () => {
    const rollouts = ofKind(objs(), 'Rollout');
    const template = named(objs(), 'AnalysisTemplate', 'http-slo')!;
    const queries = template.spec.metrics.map((m: { provider: { prometheus: { query: string } } }) => m.provider.prometheus.query).join('\n');

    expect(rollouts.map((r) => r.metadata.name).sort()).toEqual([...APP_NAMES].sort());
    for (const r of rollouts.filter((x) => x.metadata.name !== 'api-gateway')) expect(r.spec.strategy.canary.analysis.templates).toEqual([{ templateName: 'http-slo' }]);
    expect(queries).toContain('http_requests_total');
    expect(queries).toContain('http_request_duration_seconds_bucket');

    const gateway = named(objs(), 'Rollout', 'api-gateway')!.spec.strategy.blueGreen;
    expect(gateway).toMatchObject({ activeService: 'api-gateway', previewService: 'api-gateway-preview' });
    expect(named(objs(), 'Service', gateway.activeService)).toBeDefined();
    expect(named(objs(), 'Service', gateway.previewService)).toBeDefined();
    // Every analysis names a template that exists and passes each argument that has no default.
    for (const r of rollouts) {
      const uses = [r.spec.strategy.canary?.analysis, r.spec.strategy.blueGreen?.prePromotionAnalysis, r.spec.strategy.blueGreen?.postPromotionAnalysis].filter(Boolean);
      for (const use of uses) {
        for (const t of use.templates) {
          const required = named(objs(), 'AnalysisTemplate', t.templateName)!.spec.args.filter((a: { value?: string }) => a.value === undefined).map((a: { name: string }) => a.name);
          expect({ rollout: r.metadata.name, missing: required.filter((n: string) => !use.args.some((a: { name: string }) => a.name === n)) }).toEqual({ rollout: r.metadata.name, missing: [] });
        }
      }
    }
  });
});

describe('the plain-Kubernetes blue-green component (clusters without Argo Rollouts)', () => {
  let objects: K8sObject[];
  beforeAll(() => (objects = parseManifests(renderWith('staging', ['blue-green']))));
  const objs = () => objects;

  test('the green Deployment is the blue one but for name, colour and image, and the Service picks one colour', () => {
    const blue = named(objs(), 'Deployment', 'api-gateway')!;
    const green = named(objs(), 'Deployment', 'api-gateway-green')!;
    const normalise = (d: K8sObject) => {
      const copy = structuredClone(d);
      copy.metadata.name = '';
      for (const labels of [copy.metadata.labels!, copy.spec.selector.matchLabels, copy.spec.template.metadata.labels]) delete labels.version;
      for (const c of copy.spec.template.spec.containers) c.image = '';
      return copy;
    };

    expect(normalise(green)).toEqual(normalise(blue));
    expect([blue.spec.template.metadata.labels.version, green.spec.template.metadata.labels.version]).toEqual(['blue', 'green']);
    expect(named(objs(), 'Service', 'api-gateway')!.spec.selector.version).toMatch(/^(blue|green)$/);
    expect(named(objs(), 'Service', 'api-gateway-preview')!.spec.selector.version).toBe('green');
  });

  test('the gateway is scraped once per pod although two Services (api-gateway, api-gateway-preview) select it', () => {
    expect(scrapesPerApp(objs())).toEqual(Object.fromEntries(APP_NAMES.map((app) => [app, [PROBE_PORT(app)]])));
  });
});

describe('Argo CD', () => {
  const files = filesUnder(path.join(workspaceRoot, 'infrastructure/argocd'), (n) => n.endsWith('.yaml'));
  const apps = files.flatMap((f) => parseManifests(readFileSync(f, 'utf8')));

  test('there is one Application per deployed overlay, each valid and syncing automatically with prune, self-heal and backoff', () => {
    for (const file of files) expect({ file, errors: validateManifests(readFileSync(file, 'utf8')) }).toEqual({ file, errors: [] });
    expect(apps.map((a) => a.spec.source.path).sort()).toEqual(Object.keys(OVERLAYS).map((o) => `infrastructure/kubernetes/overlays/${o}`).sort());
    for (const app of apps) {
      expect(app.spec.syncPolicy).toMatchObject({ automated: { prune: true, selfHeal: true }, retry: { limit: expect.any(Number), backoff: { duration: expect.any(String), factor: 2 } } });
      const overlay = app.spec.source.path.replace('infrastructure/kubernetes/overlays/', '');
      expect(app.spec.destination.namespace).toBe(OVERLAYS[overlay].namespace);
      // Never main: an environment changes only by a promotion commit on its own branch (deploy.yml).
      expect(app.spec.source.targetRevision).toBe(`env/${overlay.replace('/', '-')}`);
    }
  });
});

interface Peer {
  podSelector?: Selector;
  namespaceSelector?: Selector;
  ipBlock?: { cidr: string };
}
interface Rule {
  to?: Peer[];
  from?: Peer[];
  ports?: { port: number | string }[];
}
interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Label selector semantics: empty selects all; matchLabels and In/NotIn/Exists expressions. */
function selects(selector: Selector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const byLabels = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
  const byExpressions = (selector.matchExpressions ?? []).every((e) => {
    if (e.operator === 'In') return e.values!.includes(labels[e.key]);
    if (e.operator === 'NotIn') return !e.values!.includes(labels[e.key]);
    if (e.operator === 'Exists') return e.key in labels;
    return !(e.key in labels);
  });
  return byLabels && byExpressions;
}

/**
 * For each app, the ports its pods are scraped on, one entry per scrape: a ServiceMonitor scrapes
 * each endpoint port of every Service it selects (so two Services over the same pods scrape them
 * twice), a PodMonitor each pod once per endpoint.
 */
function scrapesPerApp(objs: K8sObject[]): Record<string, string[]> {
  const ws = workloads(objs).filter((w) => w.obj.kind === 'Rollout' || !ofKind(objs, 'Rollout').some((r) => r.spec.workloadRef?.name === w.obj.metadata.name));
  const result: Record<string, string[]> = Object.fromEntries(APP_NAMES.map((app) => [app, []]));
  for (const monitor of ofKind(objs, 'ServiceMonitor')) {
    for (const svc of ofKind(objs, 'Service').filter((s) => selects(monitor.spec.selector, s.metadata.labels ?? {}))) {
      for (const endpoint of monitor.spec.endpoints as { port: string }[]) {
        if (!svc.spec.ports.some((p: { name: string }) => p.name === endpoint.port)) continue;
        for (const app of new Set(ws.filter((w) => matches(svc.spec.selector, w.labels)).map((w) => w.app))) result[app].push(endpoint.port);
      }
    }
  }
  for (const monitor of ofKind(objs, 'PodMonitor')) {
    for (const app of new Set(ws.filter((w) => selects(monitor.spec.selector, w.labels)).map((w) => w.app))) {
      for (const endpoint of monitor.spec.podMetricsEndpoints as { port: string }[]) result[app].push(endpoint.port);
    }
  }
  return result;
}

describe('opt-in components', () => {
  const stores = { postgres: 5432, redis: 6379, kafka: 9092 } as const;
  const users = { postgres: APP_NAMES.filter((a) => APPS[a].database), redis: APP_NAMES, kafka: APP_NAMES.filter((a) => APPS[a].database) };

  test('the data layer: Postgres, Redis and Kafka (KRaft) StatefulSets with volumes, probes, PDBs, and network policies for exactly the apps that use them', () => {
    const objs = rendered['staging + data-layer + ab-testing'];
    const podLabels = (app: string) => workloads(objs).find((w) => w.app === app)!.labels;

    for (const [store, port] of Object.entries(stores)) {
      const sts = named(objs, 'StatefulSet', store)!;
      const main = sts.spec.template.spec.containers[0];
      expect({ store, claims: sts.spec.volumeClaimTemplates.map((c: { spec: { resources: { requests: { storage: string } } } }) => !!c.spec.resources.requests.storage) }).toEqual({ store, claims: [true] });
      expect({ store, probes: ['readinessProbe', 'livenessProbe'].filter((p) => main[p]) }).toEqual({ store, probes: ['readinessProbe', 'livenessProbe'] });
      expect(main.image).toMatch(/^[\w./-]+:\d+\.\d+(\.\d+)?(-[\w]+)?$/);
      expect(sts.spec.template.spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(ofKind(objs, 'PodDisruptionBudget').filter((p) => matches(p.spec.selector.matchLabels, sts.spec.template.metadata.labels))).toHaveLength(1);
      expect(ofKind(objs, 'Service').some((svc) => matches(svc.spec.selector, sts.spec.template.metadata.labels) && svc.spec.ports.some((p: { port: number }) => p.port === port))).toBe(true);

      // Who may open a connection to the store: ingress on its side, egress on the app's.
      const admitted = APP_NAMES.filter((app) =>
        ofKind(objs, 'NetworkPolicy').some(
          (p) => selects(p.spec.podSelector, sts.spec.template.metadata.labels) && (p.spec.ingress ?? []).some((r: Rule) => (r.from ?? []).some((peer) => selects(peer.podSelector, podLabels(app))) && r.ports!.some((x) => x.port === port)),
        ),
      );
      const egress = APP_NAMES.filter((app) =>
        ofKind(objs, 'NetworkPolicy').some(
          (p) => p.spec.policyTypes.includes('Egress') && selects(p.spec.podSelector, podLabels(app)) && (p.spec.egress ?? []).some((r: Rule) => (r.to ?? []).some((peer) => selects(peer.podSelector, sts.spec.template.metadata.labels)) && r.ports!.some((x) => x.port === port)),
        ),
      );
      expect({ store, admitted, egress }).toEqual({ store, admitted: users[store as keyof typeof users], egress: users[store as keyof typeof users] });
    }
    expect(ofKind(objs, 'ConfigMap').find((c) => c.metadata.name.startsWith('events-config-'))!.data!.KAFKA_BROKERS).toBe('kafka:9092');
    expect(named(objs, 'StatefulSet', 'kafka')!.spec.template.spec.containers[0].env).toEqual(expect.arrayContaining([{ name: 'KAFKA_PROCESS_ROLES', value: 'broker,controller' }]));
  });

  test('production keeps its managed data services: no overlay lists the data layer', () => {
    for (const overlay of Object.keys(OVERLAYS)) expect({ overlay, statefulSets: ofKind(rendered[overlay], 'StatefulSet').length }).toEqual({ overlay, statefulSets: 0 });
  });

  test.each(['staging + data-layer + ab-testing', 'production/eu-west + ab-testing', 'staging + blue-green + ab-testing'])(
    'A/B testing (%s): variant B is the gateway but for name, label, replicas and image; no selector picks both variants; metrics carry the variant',
    (name) => {
      const objs = rendered[name];
      const a = named(objs, 'Deployment', 'api-gateway')!;
      const b = named(objs, 'Deployment', 'api-gateway-b')!;
      const normalise = (d: K8sObject) => {
        const copy = structuredClone(d);
        copy.metadata.name = '';
        for (const labels of [copy.metadata.labels!, copy.spec.selector.matchLabels, copy.spec.template.metadata.labels]) {
          delete labels.variant;
          delete labels.version;
        }
        delete copy.spec.replicas;
        for (const c of copy.spec.template.spec.containers) c.image = '';
        return copy;
      };
      const gatewayPods = workloads(objs).filter((w) => w.app === 'api-gateway');

      expect(normalise(b)).toEqual(normalise(a));
      expect(b.spec.template.metadata.labels.variant).toBe('b');
      expect(b.spec.template.spec.containers[0].image).toMatch(IMAGE('api-gateway'));
      for (const w of gatewayPods.filter((x) => x.obj.metadata.name !== 'api-gateway-b')) expect(w.labels.variant).toBe('a');
      // Every selector over gateway pods (Services, workloads, PDBs) selects one variant only.
      const selectors = [
        ...ofKind(objs, 'Service').map((svc) => svc.spec.selector as Record<string, string>),
        ...[...ofKind(objs, 'Deployment'), ...ofKind(objs, 'Rollout'), ...ofKind(objs, 'PodDisruptionBudget')].map((o) => o.spec.selector.matchLabels as Record<string, string>),
      ];
      for (const selector of selectors) {
        const variants = new Set(gatewayPods.filter((w) => matches(selector, w.labels)).map((w) => w.labels.variant));
        expect(variants.size).toBeLessThanOrEqual(1);
      }
      const rules = ofKind(objs, 'PrometheusRule').flatMap((r) => r.spec.groups.flatMap((g: { rules: { record?: string; expr: string }[] }) => g.rules));
      expect(rules.filter((r) => r.record?.startsWith('variant:')).map((r) => r.record)).toEqual(['variant:http_requests:rate5m', 'variant:http_error_ratio:rate5m', 'variant:http_request_duration_seconds:p99_5m']);
      const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'ab-rules-')), 'rules.yaml');
      writeFileSync(file, stringify({ groups: named(objs, 'PrometheusRule', 'ab-testing')!.spec.groups }));
      expect(run('promtool', ['check', 'rules', file])).toContain('SUCCESS: 3 rules found');
      rmSync(path.dirname(file), { recursive: true, force: true });
      expect(named(objs, 'PodMonitor', 'api-gateway')!.spec.podMetricsEndpoints[0].relabelings).toEqual(expect.arrayContaining([{ sourceLabels: ['__meta_kubernetes_pod_label_variant'], targetLabel: 'variant' }]));
      expect(scrapesPerApp(objs)['api-gateway']).toEqual(['admin']);
    },
  );
});
