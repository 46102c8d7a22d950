import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCli } from '../src/args';
import type { AuditRecord } from '../src/audit';
import { runDeploy } from '../src/cli';
import type { Kubectl } from '../src/kubectl';
import { FETCH_SCRIPT, type MetricsSource } from '../src/metrics-source';

/** A GET from inside the pod, as the dry run prints it (placeholders for pod, container and port). */
const inPod = (namespace: string, path: string) => `kubectl exec '<pod>' -n ${namespace} -c '<container>' -- node -e '${FETCH_SCRIPT}' 'http://127.0.0.1:<port>${path}'`;

let dir: string;
beforeAll(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'deploy-dry-run-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A kubectl that fails the test if a dry run ever calls it. */
const forbidden: Kubectl & { calls: number } = {
  calls: 0,
  async run() {
    forbidden.calls += 1;
    return { ok: false, stdout: '', stderr: 'a dry run must not execute kubectl' };
  },
};

const faultyGreen: MetricsSource = {
  describe: 'fake: green answers 30% 500s',
  measure: async () => ({ requests: 600, errors: 180, errorRatio: 0.3, p99Ms: 80 }),
};

async function dryRun(argv: string[], metrics?: MetricsSource) {
  const auditFile = path.join(dir, `${argv[0]}-${Math.random().toString(36).slice(2)}.jsonl`);
  const lines: string[] = [];
  const result = await runDeploy(parseCli([...argv, '--dry-run', '--audit-file', auditFile], {}), {
    kubectl: forbidden,
    metrics,
    actor: { name: 'ada', source: 'DEPLOY_ACTOR' },
    log: (line) => lines.push(line),
  });
  const audit = readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as AuditRecord);
  return { ...result, lines, printed: lines.filter((l) => l.startsWith('[dry-run] kubectl ')).map((l) => l.slice('[dry-run] '.length)), audit };
}

afterEach(() => expect(forbidden.calls).toBe(0));

describe('deploy --dry-run', () => {
  it('when rolling out product-service to staging, then it prints set image, rollout status and the verification reads, in order', async () => {
    const { printed, lines, exitCode, audit } = await dryRun(['rolling', '--env', 'staging', '--app', 'product-service', '--version', '1.4.0', '--window', '30s']);

    expect(printed).toEqual([
      'kubectl get deployment product-service -n cloudretail-staging -o json',
      'kubectl set image deployment/product-service product-service=ghcr.io/cloudretail/product-service:1.4.0 -n cloudretail-staging',
      "kubectl annotate deployment/product-service 'kubernetes.io/change-cause=deploy 1.4.0 by ada' --overwrite -n cloudretail-staging",
      'kubectl rollout status deployment/product-service -n cloudretail-staging --timeout=300s',
      'kubectl get deployment product-service -n cloudretail-staging -o json',
      'kubectl get pods -n cloudretail-staging -l app.kubernetes.io/name=product-service -o json',
      inPod('cloudretail-staging', '/metrics'),
      inPod('cloudretail-staging', '/metrics'),
    ]);
    expect(lines).toContain('[dry-run] wait 30s');
    expect(exitCode).toBe(0);
    expect(audit).toEqual([expect.objectContaining({ dryRun: true, command: 'rolling', app: 'product-service', namespace: 'cloudretail-staging', toVersion: '1.4.0', outcome: 'succeeded' })]);
    expect(audit[0].actions).toEqual(printed);
  });

  it('when a rolling release fails verification, then the plan ends with rollout undo and its status', async () => {
    const { printed, exitCode, audit } = await dryRun(['rolling', '--env', 'production', '--app', 'order-service', '--version', '2.0.0'], faultyGreen);

    expect(printed.slice(-2)).toEqual(['kubectl rollout undo deployment/order-service -n cloudretail', 'kubectl rollout status deployment/order-service -n cloudretail --timeout=300s']);
    expect(exitCode).toBe(1);
    expect(audit[0]).toMatchObject({ outcome: 'rolled_back', reasons: ['error_ratio_exceeded'] });
  });

  it('when a blue-green release of api-gateway succeeds, then green is deployed, smoke-tested, switched to, watched, and blue scaled down', async () => {
    const { printed, exitCode } = await dryRun(['blue-green', '--env', 'production', '--app', 'api-gateway', '--version', '1.3.0', '--window', '2m']);

    expect(printed).toEqual([
      "kubectl get service api-gateway -n cloudretail -o 'jsonpath={.spec.selector.version}'",
      'kubectl get deployment api-gateway -n cloudretail -o json',
      'kubectl set image deployment/api-gateway-green api-gateway=ghcr.io/cloudretail/api-gateway:1.3.0 -n cloudretail',
      'kubectl scale deployment/api-gateway-green --replicas=2 -n cloudretail',
      'kubectl rollout status deployment/api-gateway-green -n cloudretail --timeout=300s',
      'kubectl get pods -n cloudretail -l app.kubernetes.io/name=api-gateway,version=green -o json',
      inPod('cloudretail', '/health/ready'),
      inPod('cloudretail', '/openapi.json'),
      'kubectl patch service api-gateway -n cloudretail --type=merge -p \'{"spec":{"selector":{"version":"green"}}}\'',
      'kubectl get deployment api-gateway-green -n cloudretail -o json',
      'kubectl get pods -n cloudretail -l app.kubernetes.io/name=api-gateway,version=green -o json',
      inPod('cloudretail', '/metrics'),
      inPod('cloudretail', '/metrics'),
      'kubectl scale deployment/api-gateway --replicas=0 -n cloudretail',
    ]);
    expect(exitCode).toBe(0);
  });

  it('when the watch after a blue-green switch sees too many errors, then the Service is switched back to blue and green scaled down', async () => {
    const { printed, exitCode, audit } = await dryRun(['blue-green', '--env', 'staging', '--app', 'api-gateway', '--version', '1.3.1'], faultyGreen);

    expect(printed.slice(-5)).toEqual([
      'kubectl patch service api-gateway -n cloudretail-staging --type=merge -p \'{"spec":{"selector":{"version":"green"}}}\'',
      'kubectl get deployment api-gateway-green -n cloudretail-staging -o json',
      'kubectl get pods -n cloudretail-staging -l app.kubernetes.io/name=api-gateway,version=green -o json',
      'kubectl patch service api-gateway -n cloudretail-staging --type=merge -p \'{"spec":{"selector":{"version":"blue"}}}\'',
      'kubectl scale deployment/api-gateway-green --replicas=0 -n cloudretail-staging',
    ]);
    expect(printed).not.toContain('kubectl scale deployment/api-gateway --replicas=0 -n cloudretail-staging');
    expect(exitCode).toBe(1);
    expect(audit[0]).toMatchObject({ outcome: 'rolled_back', reasons: ['error_ratio_exceeded'], fromVersion: '<current-image>', toVersion: '1.3.1' });
    expect(audit[0].verification.checks.map((c) => c.stage)).toEqual(['before switch', 'after switch']);
  });

  it('when rolling back a blue-green app of the service-switch component, then the other colour is brought back and the selector switched to it', async () => {
    const { printed } = await dryRun(['rollback', '--env', 'production', '--app', 'api-gateway', '--strategy', 'blue-green']);

    expect(printed).toEqual([
      "kubectl get service api-gateway -n cloudretail -o 'jsonpath={.spec.selector.version}'",
      'kubectl get deployment api-gateway -n cloudretail -o json',
      'kubectl get deployment api-gateway-green -n cloudretail -o json',
      'kubectl rollout status deployment/api-gateway-green -n cloudretail --timeout=300s',
      'kubectl patch service api-gateway -n cloudretail --type=merge -p \'{"spec":{"selector":{"version":"green"}}}\'',
    ]);
  });

  it('when rolling back a rolling-update app to a revision, then it is rollout undo and rollout status', async () => {
    const { printed } = await dryRun(['rollback', '--env', 'staging', '--app', 'product-service', '--strategy', 'rolling', '--to-revision', '4', '--rollout-timeout', '2m']);

    expect(printed).toEqual([
      'kubectl get deployment product-service -n cloudretail-staging -o json',
      'kubectl rollout undo deployment/product-service -n cloudretail-staging --to-revision=4',
      'kubectl rollout status deployment/product-service -n cloudretail-staging --timeout=120s',
      'kubectl get deployment product-service -n cloudretail-staging -o json',
    ]);
  });

  it('when verifying with Prometheus, then it prints the PromQL it would send and queries nothing', async () => {
    const { lines } = await dryRun(['verify', '--env', 'production', '--app', 'user-service', '--prometheus-url', 'http://prometheus:9090', '--window', '5m']);

    expect(lines).toContain(
      '[dry-run] query http://prometheus:9090: sum(increase(http_requests_total{service="user-service",namespace="cloudretail",route!="/metrics",status=~"5.."}[300s]))',
    );
  });
});
