import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AuditRecord } from '../src/audit';
import { promQueries } from '../src/verify';

/**
 * The deploy CLI, run as `npm run deploy` runs it, against a scripted kubectl on PATH
 * (test/fake-kubectl.cjs): every kubectl call it makes is checked against the script, in order,
 * and the audit records are read back. Canary (product-service), blue-green (api-gateway), and
 * plain Deployments; happy paths, a failure at every step, rollback.
 */
const root = path.resolve(__dirname, '../../..');
const tsx = path.join(root, 'node_modules/.bin/tsx');
const cli = path.join(root, 'tools/deploy/src/cli.ts');

interface Call {
  args: string;
  stdout?: string;
  stderr?: string;
  exit?: number;
}

let dir: string;
let bin: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'deploy-fake-kubectl-'));
  bin = path.join(dir, 'bin');
  require('node:fs').mkdirSync(bin);
  symlinkSync(path.join(__dirname, 'fake-kubectl.cjs'), path.join(bin, 'kubectl'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function deploy(argv: string[], script: Call[]) {
  const id = `${++n}`;
  const scriptFile = path.join(dir, `script-${id}.json`);
  const log = path.join(dir, `calls-${id}.log`);
  const audit = path.join(dir, `audit-${id}.jsonl`);
  writeFileSync(scriptFile, JSON.stringify(script));
  const result = spawnSync(tsx, [cli, ...argv, '--audit-file', audit], {
    cwd: dir,
    encoding: 'utf8',
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, FAKE_KUBECTL_SCRIPT: scriptFile, FAKE_KUBECTL_LOG: log, DEPLOY_POLL_MS: '1', DEPLOY_ACTOR: 'ada', DRY_RUN: '', KUBECTL: 'kubectl' },
  });
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch {
      return '';
    }
  };
  return {
    status: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    calls: read(log).split('\n').filter(Boolean),
    audit: read(audit)
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as AuditRecord),
  };
}

const digestsFile = (digests: Record<string, string>) => {
  const file = path.join(dir, `digests-${++n}.json`);
  writeFileSync(file, JSON.stringify(digests));
  return file;
};

// ---------- what a cluster answers ----------

const STAGING = 'cloudretail-staging';
const PROD = 'cloudretail';
const OLD = 'ghcr.io/cloudretail/product-service@sha256:' + 'a'.repeat(64);
const NEW = 'ghcr.io/cloudretail/product-service@sha256:' + 'b'.repeat(64);
const GW_NEW = 'ghcr.io/cloudretail/api-gateway@sha256:' + 'c'.repeat(64);

const rolloutJson = (app: string, phase: string, o: { stable?: string; current?: string; replicas?: number; ready?: number; abort?: boolean; message?: string } = {}) =>
  JSON.stringify({
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Rollout',
    metadata: { name: app },
    spec: { replicas: o.replicas ?? 3, workloadRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: app } },
    status: { phase, message: o.message, stableRS: o.stable ?? 's1', currentPodHash: o.current ?? o.stable ?? 's1', readyReplicas: o.ready ?? o.replicas ?? 3, abort: o.abort },
  });

const podsJson = (pods: { name: string; hash: string; ready: boolean }[]) =>
  JSON.stringify({
    kind: 'List',
    items: pods.map((p) => ({
      metadata: { name: p.name, labels: { 'app.kubernetes.io/name': 'x', 'rollouts-pod-template-hash': p.hash } },
      spec: { containers: [{ name: 'x', ports: [{ name: 'http', containerPort: 3002 }] }] },
      status: { conditions: [{ type: 'Ready', status: p.ready ? 'True' : 'False' }] },
    })),
  });

const kind = (app: string, ns: string, present = true): Call => ({ args: `get rollout.argoproj.io ${app} -n ${ns} --ignore-not-found -o name`, stdout: present ? `rollout.argoproj.io/${app}\n` : '' });
const image = (app: string, ns: string, img: string): Call => ({ args: `get deployment ${app} -n ${ns} -o jsonpath={.spec.template.spec.containers[0].image}`, stdout: img });
const rollout = (app: string, ns: string, phase: string, o: Parameters<typeof rolloutJson>[2] = {}): Call => ({ args: `get rollout.argoproj.io ${app} -n ${ns} -o json`, stdout: rolloutJson(app, phase, o) });
const pods = (app: string, ns: string, list: Parameters<typeof podsJson>[0]): Call => ({ args: `get pods -n ${ns} -l app.kubernetes.io/name=${app} -o json`, stdout: podsJson(list) });
const promAnswer = (value: number) => JSON.stringify({ status: 'success', data: { resultType: 'vector', result: Number.isNaN(value) ? [] : [{ metric: {}, value: [1764300000, String(value)] }] } });
const prometheus = (app: string, ns: string, requests: number, errors: number, p99Seconds: number, podTemplateHash?: string): Call[] => {
  const q = promQueries({ service: app, namespace: ns, podTemplateHash }, 1);
  const base = '/api/v1/namespaces/monitoring/services/prometheus-operated:9090/proxy/api/v1/query?query=';
  return [
    { args: `get --raw ${base}${encodeURIComponent(q.requests)}`, stdout: promAnswer(requests) },
    { args: `get --raw ${base}${encodeURIComponent(q.errors)}`, stdout: promAnswer(errors) },
    { args: `get --raw ${base}${encodeURIComponent(q.p99Seconds)}`, stdout: promAnswer(p99Seconds) },
  ];
};
const UNREACHABLE = { stderr: 'Unable to connect to the server: dial tcp 10.20.0.1:6443: i/o timeout\n', exit: 1 };
const statusPatch = (app: string, ns: string, patch: object): Call => ({ args: `patch rollout.argoproj.io/${app} -n ${ns} --subresource=status --type=merge -p ${JSON.stringify({ status: patch })}`, stdout: `rollout.argoproj.io/${app} patched\n` });
const specPatch = (app: string, ns: string, patch: object): Call => ({ args: `patch rollout.argoproj.io/${app} -n ${ns} --type=merge -p ${JSON.stringify({ spec: patch })}`, stdout: `rollout.argoproj.io/${app} patched\n` });

/** Runs a script, then checks that exactly its calls were made, in order. */
function scripted(argv: string[], script: Call[]) {
  const result = deploy(argv, script);
  expect(result.calls).toEqual(script.map((c) => c.args));
  return result;
}

// ---------- canary (product-service in staging) ----------

describe('canary: rollout status after a promotion', () => {
  const argv = () => ['rollout', 'status', '--env', 'staging', '--digests', digestsFile({ 'product-service': NEW }), '--timeout', '1s'];
  const happy = (): Call[] => [
    kind('product-service', STAGING),
    image('product-service', STAGING, OLD),
    image('product-service', STAGING, NEW),
    rollout('product-service', STAGING, 'Progressing', { stable: 's1', current: 's2' }),
    rollout('product-service', STAGING, 'Paused', { stable: 's1', current: 's2', ready: 4 }),
    rollout('product-service', STAGING, 'Healthy', { stable: 's2', current: 's2' }),
  ];

  it('when Argo CD syncs the new digest and the canary steps complete, then it waits through both and succeeds', () => {
    const { status, audit } = scripted(argv(), happy());

    expect(status).toBe(0);
    expect(audit).toEqual([
      expect.objectContaining({
        command: 'rollout status',
        env: 'staging',
        namespace: STAGING,
        app: 'product-service',
        toVersion: NEW,
        outcome: 'succeeded',
        actor: { name: 'ada', source: 'DEPLOY_ACTOR' },
        actions: happy().map((c) => `kubectl ${c.args.replace('jsonpath={.spec.template.spec.containers[0].image}', "'jsonpath={.spec.template.spec.containers[0].image}'")}`),
      }),
    ]);
    expect(audit[0].verification.checks[0].observations).toEqual({ rolloutTimedOut: false, pods: { ready: 3, desired: 3 } });
  });

  it.each([0, 1, 3])('when kubectl fails at call %i, then it stops there with outcome error and the message in the audit', (failAt) => {
    const script = happy().slice(0, failAt + 1);
    script[failAt] = { ...script[failAt], stdout: '', ...UNREACHABLE };

    const { status, audit } = scripted(argv(), script);

    expect(status).toBe(1);
    expect(audit[0]).toMatchObject({ outcome: 'error', error: expect.stringContaining('Unable to connect to the server') });
  });

  it('when the analysis fails and Argo Rollouts aborts the canary, then status fails with rollout_degraded', () => {
    const script = [...happy().slice(0, 4), rollout('product-service', STAGING, 'Degraded', { stable: 's1', current: 's2', abort: true, message: 'RolloutAborted: Metric "error-ratio" assessed Failed' })];

    const { status, audit, stdout } = scripted(argv(), script);

    expect(status).toBe(1);
    expect(audit[0]).toMatchObject({ outcome: 'verification_failed', reasons: ['rollout_degraded'] });
    expect(stdout).toContain('assessed Failed');
  });

  it('when Argo CD never syncs the digest, then it times out without reading the Rollout', () => {
    const script = [kind('product-service', STAGING), image('product-service', STAGING, OLD), image('product-service', STAGING, OLD), image('product-service', STAGING, OLD)];

    const { status, audit } = scripted(['rollout', 'status', '--env', 'staging', '--digests', digestsFile({ 'product-service': NEW }), '--timeout', '3ms'], script);

    expect(status).toBe(1);
    expect(audit[0]).toMatchObject({ outcome: 'verification_failed', reasons: ['rollout_timed_out'] });
  });
});

describe('verify on a Rollout-managed service (its Deployment is at 0 by design)', () => {
  const argv = ['verify', '--env', 'staging', '--app', 'product-service', '--prometheus-service', 'monitoring/prometheus-operated:9090', '--window', '1ms'];
  const midCanary = (canaryReady = true): Call[] => [
    kind('product-service', STAGING),
    rollout('product-service', STAGING, 'Paused', { stable: 's1', current: 's2', replicas: 3, ready: canaryReady ? 4 : 3 }),
    pods('product-service', STAGING, [
      { name: 'ps-s1-a', hash: 's1', ready: true },
      { name: 'ps-s1-b', hash: 's1', ready: true },
      { name: 'ps-s1-c', hash: 's1', ready: true },
      { name: 'ps-s2-a', hash: 's2', ready: canaryReady },
    ]),
  ];

  it('when the stable and canary pods are ready and the figures are good, then it passes, judging them and never the Deployment', () => {
    const { status, audit } = scripted(argv, [...midCanary(), ...prometheus('product-service', STAGING, 1200, 3, 0.12, 's2')]);

    expect(status).toBe(0);
    expect(audit[0]).toMatchObject({ command: 'verify', outcome: 'succeeded', reasons: [] });
    expect(audit[0].verification.checks[0].observations).toEqual({
      rollout: { phase: 'Paused', stable: { hash: 's1', ready: 3, total: 3 }, canary: { hash: 's2', ready: 1, total: 1 } },
      rolloutDegraded: false,
      pods: { ready: 4, desired: 3 },
      healthy: true,
      figures: { requests: 1200, errors: 3, errorRatio: 0.0025, p99Ms: 120 },
    });
    expect(audit[0].actions.some((a) => a.includes('get deployment'))).toBe(false);
  });

  it('when the canary pod is not ready, then it fails for unhealthy', () => {
    const { status, audit } = scripted(argv, [...midCanary(false), ...prometheus('product-service', STAGING, 1200, 0, 0.1, 's2')]);

    expect(status).toBe(1);
    expect(audit[0]).toMatchObject({ outcome: 'verification_failed', reasons: ['unhealthy'] });
    expect(audit[0].verification.checks[0].observations.rollout).toEqual({ phase: 'Paused', stable: { hash: 's1', ready: 3, total: 3 }, canary: { hash: 's2', ready: 0, total: 1 } });
  });

  it("when the canary's own error ratio is over the threshold, then it fails for error_ratio_exceeded", () => {
    const { status, audit } = scripted(argv, [...midCanary(), ...prometheus('product-service', STAGING, 1000, 40, 0.1, 's2')]);

    expect(status).toBe(1);
    expect(audit[0]).toMatchObject({ outcome: 'verification_failed', reasons: ['error_ratio_exceeded'] });
  });

  it.each([0, 1, 2])('when kubectl fails at call %i (kind, Rollout, pods), then verify is an error, never a pass', (failAt) => {
    const script = midCanary().slice(0, failAt + 1);
    script[failAt] = { ...script[failAt], stdout: '', ...UNREACHABLE };

    const { status, audit } = scripted(argv, script);

    expect(status).toBe(1);
    expect(audit[0]).toMatchObject({ command: 'verify', outcome: 'error', error: expect.stringContaining('i/o timeout') });
  });

  it('when the Rollout is Degraded (its analysis aborted it), then verify fails even with good figures', () => {
    const script = midCanary();
    script[1] = rollout('product-service', STAGING, 'Degraded', { stable: 's1', current: 's2', abort: true });

    const { status, audit } = scripted(argv, [...script, ...prometheus('product-service', STAGING, 1000, 0, 0.1, 's2')]);

    expect(status).toBe(1);
    expect(audit[0].reasons).toEqual(['rollout_degraded']);
  });

  it('when Prometheus is unreachable through the API server, then the run is an error, not a pass', () => {
    const [first] = prometheus('product-service', STAGING, 0, 0, 0, 's2');
    const { status, audit } = scripted(argv, [...midCanary(), { ...first, stdout: '', stderr: 'Error from server (ServiceUnavailable): the server is currently unable to handle the request\n', exit: 1 }]);

    expect(status).toBe(1);
    expect(audit[0]).toMatchObject({ outcome: 'error', error: expect.stringContaining('Prometheus answered 502') });
  });
});

describe('driving a Rollout', () => {
  const on = (action: string, ...extra: string[]) => ['rollout', action, '--env', 'staging', '--app', 'product-service', ...extra];

  it.each([
    ['promote', [], statusPatch('product-service', STAGING, { pauseConditions: null })],
    ['promote', ['--full'], statusPatch('product-service', STAGING, { promoteFull: true })],
    ['abort', [], statusPatch('product-service', STAGING, { abort: true })],
    ['pause', [], specPatch('product-service', STAGING, { paused: true })],
    ['resume', [], specPatch('product-service', STAGING, { paused: false })],
  ] as const)('rollout %s %j sends the patch the kubectl-argo-rollouts plugin sends', (action, extra, patch) => {
    const { status, audit } = scripted(on(action, ...extra), [kind('product-service', STAGING), patch]);

    expect(status).toBe(0);
    expect(audit[0]).toMatchObject({ command: `rollout ${action}`, outcome: 'succeeded' });
  });

  it('when a patch is refused, then the action fails with the API server message', () => {
    const { status, audit } = scripted(on('abort'), [kind('product-service', STAGING), { ...statusPatch('product-service', STAGING, { abort: true }), stdout: '', stderr: 'Error from server (Forbidden): rollouts.argoproj.io "product-service" is forbidden\n', exit: 1 }]);

    expect(status).toBe(1);
    expect(audit[0].error).toContain('Forbidden');
  });

  const replicaSets = JSON.stringify({
    items: [
      { rev: 3, hash: 's3', image: NEW, replicas: 3 },
      { rev: 1, hash: 's1', image: 'ghcr.io/cloudretail/product-service:0.1.0', replicas: 0 },
      { rev: 2, hash: 's2', image: OLD, replicas: 0 },
    ].map((r) => ({
      metadata: { annotations: { 'rollout.argoproj.io/revision': String(r.rev) }, labels: { 'rollouts-pod-template-hash': r.hash }, ownerReferences: [{ kind: 'Rollout', name: 'product-service' }] },
      spec: { replicas: r.replicas, template: { spec: { containers: [{ image: r.image }] } } },
    })),
  });
  const listRs: Call = { args: `get replicasets -n ${STAGING} -l app.kubernetes.io/name=product-service -o json`, stdout: replicaSets };

  it('rollout history lists the Rollout revisions from its ReplicaSets, oldest first', () => {
    const { status, stdout } = scripted(on('history'), [kind('product-service', STAGING), listRs]);

    expect(status).toBe(0);
    expect(stdout).toContain(`1\ts1\tghcr.io/cloudretail/product-service:0.1.0\t0\n2\ts2\t${OLD}\t0\n3\ts3\t${NEW}\t3`);
  });

  it('rollout undo --to-revision 2 puts that revision image on the referenced Deployment and waits until the Rollout is Healthy on it', () => {
    const { status, audit } = scripted(on('undo', '--to-revision', '2', '--timeout', '1s'), [
      kind('product-service', STAGING),
      listRs,
      { args: `set image deployment/product-service product-service=${OLD} -n ${STAGING}`, stdout: 'deployment.apps/product-service image updated\n' },
      image('product-service', STAGING, OLD),
      rollout('product-service', STAGING, 'Healthy', { stable: 's2' }),
    ]);

    expect(status).toBe(0);
    expect(audit[0]).toMatchObject({ command: 'rollout undo', outcome: 'succeeded' });
  });

  it('rollout undo to a revision that does not exist changes nothing', () => {
    const { status, audit } = scripted(on('undo', '--to-revision', '9'), [kind('product-service', STAGING), listRs]);

    expect(status).toBe(1);
    expect(audit[0].error).toContain('no revision 9 (have 1, 2, 3)');
  });
});

// ---------- blue-green (api-gateway in production-eu-west) ----------

describe('blue-green Rollout of the gateway', () => {
  const happy = (): Call[] => [
    kind('api-gateway', PROD),
    image('api-gateway', PROD, GW_NEW),
    rollout('api-gateway', PROD, 'Progressing', { stable: 'b1', current: 'g2', replicas: 3, ready: 6, message: 'active service cutover pending' }),
    rollout('api-gateway', PROD, 'Healthy', { stable: 'g2', current: 'g2' }),
  ];
  const argv = () => ['rollout', 'status', '--env', 'production-eu-west', '--digests', digestsFile({ 'api-gateway': GW_NEW }), '--timeout', '1s'];

  it('when the preview ReplicaSet passes its pre-promotion analysis and is switched to, then status succeeds', () => {
    const { status, audit } = scripted(argv(), happy());

    expect(status).toBe(0);
    expect(audit[0]).toMatchObject({ command: 'rollout status', env: 'production-eu-west', namespace: PROD, app: 'api-gateway', toVersion: GW_NEW, outcome: 'succeeded' });
  });

  it.each([0, 1, 2, 3])('when kubectl fails at call %i, then status is an error and stops there', (failAt) => {
    const script = happy().slice(0, failAt + 1);
    script[failAt] = { ...script[failAt], stdout: '', ...UNREACHABLE };

    const { status, audit } = scripted(argv(), script);

    expect(status).toBe(1);
    expect(audit[0].outcome).toBe('error');
  });

  it('when the abort itself is refused, then rollback is an error (the workflow then still reverts in Git)', () => {
    const { status, audit } = scripted(['rollback', '--env', 'production-eu-west', '--app', 'api-gateway'], [
      kind('api-gateway', PROD),
      { ...statusPatch('api-gateway', PROD, { abort: true }), stdout: '', ...UNREACHABLE },
    ]);

    expect(status).toBe(1);
    expect(audit[0]).toMatchObject({ command: 'rollback', outcome: 'error' });
  });

  it('when the post-promotion analysis fails, then status fails and rollback aborts, which sends traffic back to the old ReplicaSet', () => {
    const failed = scripted(['rollout', 'status', '--env', 'production-eu-west', '--app', 'api-gateway', '--timeout', '1s'], [
      kind('api-gateway', PROD),
      rollout('api-gateway', PROD, 'Degraded', { stable: 'b1', current: 'g2', abort: true, message: 'RolloutAborted: Metric "p99-latency" assessed Failed' }),
    ]);
    const rolledBack = scripted(['rollback', '--env', 'production-eu-west', '--app', 'api-gateway'], [kind('api-gateway', PROD), statusPatch('api-gateway', PROD, { abort: true })]);

    expect(failed.status).toBe(1);
    expect(failed.audit[0].reasons).toEqual(['rollout_degraded']);
    expect(rolledBack.status).toBe(0);
    expect(rolledBack.audit[0]).toMatchObject({ command: 'rollback', app: 'api-gateway', env: 'production-eu-west', outcome: 'succeeded' });
  });

  it('verify after the switch judges the active ReplicaSet only (the scaled-down old one is not stable any more)', () => {
    const { status, audit } = scripted(['verify', '--env', 'production-eu-west', '--app', 'api-gateway', '--prometheus-service', 'monitoring/prometheus-operated:9090', '--window', '1ms'], [
      kind('api-gateway', PROD),
      rollout('api-gateway', PROD, 'Healthy', { stable: 'g2', replicas: 2 }),
      pods('api-gateway', PROD, [
        { name: 'gw-g2-a', hash: 'g2', ready: true },
        { name: 'gw-g2-b', hash: 'g2', ready: true },
        { name: 'gw-b1-a', hash: 'b1', ready: false },
      ]),
      ...prometheus('api-gateway', PROD, 5000, 2, 0.08),
    ]);

    expect(status).toBe(0);
    expect(audit[0].verification.checks[0].observations.rollout).toEqual({ phase: 'Healthy', stable: { hash: 'g2', ready: 2, total: 2 } });
  });
});

// ---------- plain Deployments (no Rollout, or no Rollouts CRD) ----------

describe('an app without a Rollout', () => {
  const on = (action: string, ...extra: string[]) => ['rollout', action, '--env', 'staging', '--app', 'user-service', ...extra];
  const noRollout = kind('user-service', STAGING, false);

  it.each([
    ['status', ['--timeout', '90s'], [{ args: `rollout status deployment/user-service -n ${STAGING} --timeout=90s`, stdout: 'deployment "user-service" successfully rolled out\n' }]],
    ['pause', [], [{ args: `rollout pause deployment/user-service -n ${STAGING}`, stdout: 'deployment.apps/user-service paused\n' }]],
    ['resume', [], [{ args: `rollout resume deployment/user-service -n ${STAGING}`, stdout: 'deployment.apps/user-service resumed\n' }]],
    ['history', ['--to-revision', '3'], [{ args: `rollout history deployment/user-service -n ${STAGING} --revision=3`, stdout: 'deployment.apps/user-service with revision #3\n' }]],
    [
      'undo',
      ['--to-revision', '3', '--timeout', '2m'],
      [
        { args: `rollout undo deployment/user-service -n ${STAGING} --to-revision=3`, stdout: 'deployment.apps/user-service rolled back\n' },
        { args: `rollout status deployment/user-service -n ${STAGING} --timeout=120s`, stdout: 'deployment "user-service" successfully rolled out\n' },
      ],
    ],
  ] as const)('rollout %s %j is kubectl rollout on the Deployment', (action, extra, calls) => {
    const { status, audit } = scripted(on(action, ...extra), [noRollout, ...calls]);

    expect(status).toBe(0);
    expect(audit[0]).toMatchObject({ command: `rollout ${action}`, outcome: 'succeeded' });
  });

  it('when kubectl rollout status times out, then status fails with rollout_timed_out', () => {
    const { status, audit } = scripted(on('status', '--timeout', '90s'), [
      noRollout,
      { args: `rollout status deployment/user-service -n ${STAGING} --timeout=90s`, stderr: 'error: timed out waiting for the condition\n', exit: 1 },
    ]);

    expect(status).toBe(1);
    expect(audit[0].reasons).toEqual(['rollout_timed_out']);
  });

  it('when the cluster has no Rollouts CRD, then the app is treated as a Deployment', () => {
    const { status } = scripted(on('pause'), [
      { args: `get rollout.argoproj.io user-service -n ${STAGING} --ignore-not-found -o name`, stderr: 'error: the server doesn\'t have a resource type "rollout"\n', exit: 1 },
      { args: `rollout pause deployment/user-service -n ${STAGING}`, stdout: 'deployment.apps/user-service paused\n' },
    ]);

    expect(status).toBe(0);
  });

  it('promote has nothing to promote on a Deployment, and says so', () => {
    const { status, audit } = scripted(on('promote'), [noRollout]);

    expect(status).toBe(1);
    expect(audit[0].error).toContain('user-service is a Deployment: it has no steps to promote');
  });

  it('rollback of a Deployment is rollout undo and waits for it', () => {
    const deployment = JSON.stringify({ spec: { replicas: 2, template: { spec: { containers: [{ image: 'ghcr.io/cloudretail/user-service:2' }] } } }, status: { readyReplicas: 2 } });
    const { status } = scripted(['rollback', '--env', 'staging', '--app', 'user-service'], [
      noRollout,
      { args: `get service user-service -n ${STAGING} -o jsonpath={.spec.selector.version}`, stdout: '' },
      { args: `get deployment user-service -n ${STAGING} -o json`, stdout: deployment },
      { args: `rollout undo deployment/user-service -n ${STAGING}`, stdout: 'deployment.apps/user-service rolled back\n' },
      { args: `rollout status deployment/user-service -n ${STAGING} --timeout=300s`, stdout: 'deployment "user-service" successfully rolled out\n' },
      { args: `get deployment user-service -n ${STAGING} -o json`, stdout: deployment },
    ]);

    expect(status).toBe(0);
  });
});

test('compare reads each A/B variant of the last window through Prometheus and records both side by side', () => {
  const query = (variant: string, requests: number, errors: number, p99: number): Call[] => {
    const q = promQueries({ service: 'api-gateway', namespace: STAGING, variant }, 1_800_000);
    const base = '/api/v1/namespaces/monitoring/services/prometheus-operated:9090/proxy/api/v1/query?query=';
    return [
      { args: `get --raw ${base}${encodeURIComponent(q.requests)}`, stdout: promAnswer(requests) },
      { args: `get --raw ${base}${encodeURIComponent(q.errors)}`, stdout: promAnswer(errors) },
      { args: `get --raw ${base}${encodeURIComponent(q.p99Seconds)}`, stdout: promAnswer(p99) },
    ];
  };

  const { status, audit, stdout } = scripted(['compare', '--env', 'staging', '--app', 'api-gateway', '--prometheus-service', 'monitoring/prometheus-operated:9090', '--window', '30m'], [
    ...query('a', 90_000, 45, 0.2),
    ...query('b', 5_000, 150, 0.9),
  ]);

  expect(status).toBe(0);
  expect(audit[0].verification.checks.map((c) => [c.stage, c.observations.figures, c.verdict.reasons])).toEqual([
    ['variant a', { requests: 90_000, errors: 45, errorRatio: 0.0005, p99Ms: 200 }, []],
    ['variant b', { requests: 5_000, errors: 150, errorRatio: 0.03, p99Ms: 900 }, ['error_ratio_exceeded', 'p99_exceeded']],
  ]);
  expect(stdout).toContain('variant b: FAIL (error_ratio_exceeded, p99_exceeded)');
});

test('compare without Prometheus is a usage error', () => {
  const { status, stderr } = deploy(['compare', '--env', 'staging', '--app', 'api-gateway'], []);

  expect(status).toBe(2);
  expect(stderr).toContain('compare reads Prometheus');
});

test('when --apps names several, then each gets its own audit record and the exit code is the worst', () => {
  const { status, audit } = scripted(['rollout', 'abort', '--env', 'staging', '--apps', 'product-service,order-service'], [
    kind('product-service', STAGING),
    statusPatch('product-service', STAGING, { abort: true }),
    kind('order-service', STAGING),
    { ...statusPatch('order-service', STAGING, { abort: true }), stdout: '', ...UNREACHABLE },
  ]);

  expect(status).toBe(1);
  expect(audit.map((a) => [a.app, a.outcome])).toEqual([
    ['product-service', 'succeeded'],
    ['order-service', 'error'],
  ]);
});
