import { recordingKubectl } from '../src/kubectl';
import type { MetricsSource } from '../src/metrics-source';
import { type Deps, blueGreen, rollback, rolling } from '../src/strategies';
import type { Figures } from '../src/verify';

const settings = { thresholds: { maxErrorRatio: 0.01, maxP99Ms: 500, minRequests: 20 }, windowMs: 1000, rolloutTimeoutMs: 60_000 };
const target = { app: 'product-service', namespace: 'cloudretail-staging' };
const healthyFigures: Figures = { requests: 900, errors: 0, errorRatio: 0, p99Ms: 90 };

const deployment = (replicas: number, ready: number, image = 'ghcr.io/cloudretail/product-service:1.0.0') =>
  JSON.stringify({ spec: { replicas, template: { spec: { containers: [{ image }] } } }, status: { readyReplicas: ready } });
const pods = JSON.stringify({
  items: [{ metadata: { name: 'p-1' }, spec: { containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 3002 }] }] }, status: { conditions: [{ type: 'Ready', status: 'True' }] } }],
});

/** A cluster that answers reads sensibly; `fail` makes matching commands fail. */
function cluster({ fail = () => false, state = () => deployment(3, 3), active = 'blue' }: { fail?: (cmd: string) => boolean; state?: (name: string) => string; active?: string } = {}) {
  return recordingKubectl((args) => {
    const cmd = args.join(' ');
    if (fail(cmd)) return { ok: false, stderr: `error: ${cmd}` };
    if (cmd.includes('{.spec.selector.version}')) return { stdout: active };
    if (args[0] === 'get' && args[1] === 'deployment') return { stdout: state(args[2]) };
    if (args[0] === 'get' && args[1] === 'pods') return { stdout: pods };
    return {};
  });
}

function deps(kubectl: Deps['kubectl'], figures: Figures = healthyFigures): Deps {
  const metrics: MetricsSource = { describe: 'fake', measure: async () => figures };
  return { kubectl, metrics, sleep: async () => undefined, log: () => undefined };
}

describe('rolling', () => {
  it('when pods do not become ready before the rollout timeout, then it rolls back without measuring', async () => {
    const kubectl = cluster({ fail: (cmd) => cmd.startsWith('rollout status') && !kubectl.commands.some((c) => c.includes('rollout undo')) });

    const report = await rolling(deps(kubectl), target, { ...settings, image: 'ghcr.io/cloudretail/product-service:1.1.0', changeCause: 'test' });

    expect(report).toMatchObject({ outcome: 'rolled_back', reasons: ['rollout_timed_out'], fromVersion: '1.0.0', toVersion: '1.1.0' });
    expect(kubectl.commands.slice(-2)).toEqual([
      'kubectl rollout undo deployment/product-service -n cloudretail-staging',
      'kubectl rollout status deployment/product-service -n cloudretail-staging --timeout=60s',
    ]);
    expect(kubectl.commands.some((c) => c.includes('get pods'))).toBe(false);
  });

  it('when fewer pods are ready than desired after the rollout, then it rolls back for pods_not_ready', async () => {
    const report = await rolling(deps(cluster({ state: () => deployment(3, 2) })), target, { ...settings, image: 'x:1.1.0', changeCause: 'test' });
    expect(report).toMatchObject({ outcome: 'rolled_back', reasons: ['pods_not_ready'] });
  });

  it('when p99 is over the threshold, then it rolls back for p99_exceeded', async () => {
    const report = await rolling(deps(cluster(), { ...healthyFigures, p99Ms: 750 }), target, { ...settings, image: 'x:1.1.0', changeCause: 'test' });
    expect(report).toMatchObject({ outcome: 'rolled_back', reasons: ['p99_exceeded'] });
  });

  it('when everything passes, then no undo is issued', async () => {
    const kubectl = cluster();
    const report = await rolling(deps(kubectl), target, { ...settings, image: 'x:1.1.0', changeCause: 'test' });
    expect(report.outcome).toBe('succeeded');
    expect(kubectl.commands.some((c) => c.includes('undo'))).toBe(false);
  });
});

describe('blue-green', () => {
  const bg = { ...settings, image: 'ghcr.io/cloudretail/api-gateway:2.0.0', smokePath: '/openapi.json', keepOld: false };
  const gateway = { app: 'api-gateway', namespace: 'cloudretail' };

  it('when the smoke test fails on a green pod, then the Service is never switched and green is scaled down', async () => {
    const kubectl = cluster({ fail: (cmd) => cmd.includes('http://127.0.0.1:3002/openapi.json') });

    const report = await blueGreen(deps(kubectl), gateway, bg);

    expect(report).toMatchObject({ outcome: 'aborted', reasons: ['smoke_test_failed'] });
    expect(kubectl.commands.some((c) => c.startsWith('kubectl patch service'))).toBe(false);
    expect(kubectl.commands.at(-1)).toBe('kubectl scale deployment/api-gateway-green --replicas=0 -n cloudretail');
  });

  it('when green is live and blue gets the release, then blue is deployed and green scaled down afterwards', async () => {
    const kubectl = cluster({ active: 'green' });

    await blueGreen(deps(kubectl), gateway, bg);

    expect(kubectl.commands).toContain('kubectl set image deployment/api-gateway api-gateway=ghcr.io/cloudretail/api-gateway:2.0.0 -n cloudretail');
    expect(kubectl.commands.at(-1)).toBe('kubectl scale deployment/api-gateway-green --replicas=0 -n cloudretail');
  });

  it('when the Service has no version selector, then it refuses before changing anything', async () => {
    const kubectl = cluster({ active: '' });
    await expect(blueGreen(deps(kubectl), gateway, bg)).rejects.toThrow('not a blue-green app');
    expect(kubectl.commands).toHaveLength(1);
  });
});

describe('rollback', () => {
  it('when the previous colour was scaled down, then it is scaled back to the live size and ready before the switch', async () => {
    const kubectl = cluster({ active: 'green', state: (name) => (name === 'api-gateway' ? deployment(0, 0) : deployment(4, 4)) });

    const report = await rollback(deps(kubectl), { app: 'api-gateway', namespace: 'cloudretail' }, { rolloutTimeoutMs: 60_000 });

    expect(report.outcome).toBe('succeeded');
    expect(kubectl.commands.slice(-3)).toEqual([
      'kubectl scale deployment/api-gateway --replicas=4 -n cloudretail',
      'kubectl rollout status deployment/api-gateway -n cloudretail --timeout=60s',
      'kubectl patch service api-gateway -n cloudretail --type=merge -p \'{"spec":{"selector":{"version":"blue"}}}\'',
    ]);
  });

  it('when the previous colour does not become ready, then the selector is left alone', async () => {
    const kubectl = cluster({ fail: (cmd) => cmd.startsWith('rollout status') });
    await expect(rollback(deps(kubectl), { app: 'api-gateway', namespace: 'cloudretail' }, { rolloutTimeoutMs: 60_000 })).rejects.toThrow('still selects blue');
    expect(kubectl.commands.some((c) => c.startsWith('kubectl patch'))).toBe(false);
  });

  it('when the Service selects no colour, then auto falls back to rollout undo', async () => {
    const kubectl = cluster({ active: '' });
    await rollback(deps(kubectl), target, { rolloutTimeoutMs: 60_000 });
    expect(kubectl.commands).toContain('kubectl rollout undo deployment/product-service -n cloudretail-staging');
  });
});
